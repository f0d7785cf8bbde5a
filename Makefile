# virtstorage: `make run` to use it, `make test` to test it.
.PHONY: run test setup setup-test lint bench loadtest messages clean

run: setup
	./scripts/run.sh

setup:
	./scripts/setup.sh

setup-test:
	WITH_TEST_TOOLS=1 ./scripts/setup.sh

# The suite runs on PostgreSQL (scripts/setup.sh starts it and makes the role) in TEST_PROCESSES processes
# (pytest-xdist, a file's tests in one process; each process has its own test database, Celery queue, Redis
# keys, worker and server), then the tests that disturb others or are disturbed by them (marked serial) alone,
# then the smoke set on SQLite, the default database. pytest's exit code 5 is "no test selected" (PYTEST_ARGS
# chose none of a part).
TEST_DATABASE_URL ?= postgres://vstest:vstest@127.0.0.1:5432/vstest
TEST_PROCESSES ?= 2
PYTEST = .venv/bin/python -m pytest
ALLOW_NONE = || [ $$? -eq 5 ]

test: setup-test
	.venv/bin/ruff check .
	DATABASE_URL=$(TEST_DATABASE_URL) $(PYTEST) -n $(TEST_PROCESSES) --dist loadfile -m "not serial" $(PYTEST_ARGS) $(ALLOW_NONE)
	DATABASE_URL=$(TEST_DATABASE_URL) $(PYTEST) -m serial $(PYTEST_ARGS) $(ALLOW_NONE)
	env -u DATABASE_URL $(PYTEST) -m smoke $(PYTEST_ARGS) $(ALLOW_NONE)

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
