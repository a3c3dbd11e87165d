# One image for every Countermand service: run it as `python -m services.<name>` (see docker-compose.yml
# and deploy/k8s/). Without a command it prints the `countermand` CLI's help.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 countermand \
 && useradd --system --uid 10001 --gid countermand --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin countermand

WORKDIR /app

# Pinned dependencies first, so that a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY cli ./cli
# `countermand registry ...` (the synthetic registry for demos) lives in the dev tooling package.
COPY devtools ./devtools
# The install gives the `countermand` console script; `python -m services.<name>` runs from /app, so
# files next to the code (templates) are found as they are in the source tree.
RUN pip install --no-deps . \
 && rm -rf build ./*.egg-info \
 && mkdir -p /var/lib/countermand /var/lib/countermand-keys \
    /var/lib/countermand-signing/intake /var/lib/countermand-signing/impact \
    /var/lib/countermand-signing/enforcement /var/lib/countermand-signing/agent /var/lib/countermand-signing/public \
 && chown -R countermand:countermand /var/lib/countermand /var/lib/countermand-keys /var/lib/countermand-signing

# Services keep their state under /var/lib/countermand (COUNTERMAND_<NAME>_STATE_DIR); the key jobs write under
# countermand-keys and countermand-signing/<service>: a named volume mounted on any of them inherits the non-root owner.
USER 10001:10001
ENV COUNTERMAND_LOG_FORMAT=json
EXPOSE 8080

CMD ["countermand", "--help"]
