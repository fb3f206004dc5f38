module modelfleet.dev/bench/loadgen

go 1.22
