# virtstorage: `make run` to use it, `make test` to test it.
.PHONY: run test setup setup-test lint bench clean

run: setup
	./scripts/run.sh

setup:
	./scripts/setup.sh

setup-test:
	WITH_TEST_TOOLS=1 ./scripts/setup.sh

test: setup-test
	.venv/bin/ruff check .
	.venv/bin/python -m pytest $(PYTEST_ARGS)

lint: setup-test
	.venv/bin/ruff check .

bench: setup-test
	.venv/bin/python bench/run.py

clean:
	rm -rf var/staticfiles .pytest_cache
