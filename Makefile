# The few commands people need. `make run` and `make test` set everything up on Debian/Ubuntu.
.PHONY: run test setup lint bench clean

run:
	scripts/setup.sh run
	.venv/bin/gridmap demo --if-empty --cases 3000 --closed-cases 1000
	.venv/bin/gridmap serve

test:
	scripts/setup.sh test
	.venv/bin/ruff check gridmap tests bench
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check gridmap tests bench
	.venv/bin/ruff format --check gridmap tests bench

bench:
	for script in bench/bench_*.py; do echo "== $$script"; .venv/bin/python $$script || exit 1; done

clean:
	rm -rf .venv instance build test-artifacts
