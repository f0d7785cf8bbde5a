# virtstorage: `make run` to use it, `make test` to test it.
.PHONY: run test setup setup-test lint bench loadtest messages clean

run: setup
	./scripts/run.sh

setup:
	./scripts/setup.sh

setup-test:
	WITH_TEST_TOOLS=1 ./scripts/setup.sh

# The suite runs on PostgreSQL (scripts/setup.sh starts it and makes the role), then its smoke set on SQLite,
# the default database.
TEST_DATABASE_URL ?= postgres://vstest:vstest@127.0.0.1:5432/vstest

test: setup-test
	.venv/bin/ruff check .
	DATABASE_URL=$(TEST_DATABASE_URL) .venv/bin/python -m pytest $(PYTEST_ARGS)
	env -u DATABASE_URL .venv/bin/python -m pytest -m smoke $(PYTEST_ARGS)

lint: setup-test
	.venv/bin/ruff check .

bench: setup-test
	BENCH_POSTGRES_URL=$(TEST_DATABASE_URL) .venv/bin/python bench/run.py

# 50 simulated users (locust) against the whole app on 127.0.0.1 for 2 minutes: bench/loadtest.py.
loadtest: setup-test
	.venv/bin/python -m bench.loadtest

# The es catalog brought up to date with the code (then translate what is new): scripts/messages.sh.
messages: setup-test
	./scripts/messages.sh

clean:
	rm -rf var/staticfiles .pytest_cache
