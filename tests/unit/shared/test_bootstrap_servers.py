"""COUNTERMAND_KAFKA_BOOTSTRAP names several brokers, comma-separated, and every client gets them one by one:
FastStream takes a string as one host name, so a three-broker bootstrap would reach none."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.runtime.kafka import broker_options, connection_options
from shared.runtime.settings import KafkaSettings

THREE = "10.0.0.1:9093, 10.0.0.2:9093,10.0.0.3:9093"


def test_every_client_gets_each_server_of_a_comma_separated_bootstrap() -> None:
    settings = KafkaSettings(bootstrap=THREE)
    servers = ["10.0.0.1:9093", "10.0.0.2:9093", "10.0.0.3:9093"]
    assert settings.servers == servers
    assert connection_options(settings, "t")["bootstrap_servers"] == servers
    assert broker_options(settings, "t")["bootstrap_servers"] == servers


def test_one_server_is_a_list_of_one() -> None:
    assert broker_options(KafkaSettings(bootstrap="127.0.0.1:9092"), "t")["bootstrap_servers"] == ["127.0.0.1:9092"]


@pytest.mark.parametrize("bootstrap", [",", " , ,"])
def test_a_bootstrap_of_only_commas_is_refused_by_name(bootstrap: str) -> None:
    with pytest.raises(ValidationError, match="bootstrap names no server"):
        KafkaSettings(bootstrap=bootstrap)
