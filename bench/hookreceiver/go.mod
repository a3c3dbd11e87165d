module countermand/bench/hookreceiver

go 1.22
