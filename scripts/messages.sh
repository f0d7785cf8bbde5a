#!/bin/sh
# The translation catalogs (locale/es): every translatable string of the code, merged into the committed
# catalog (new strings untranslated, changed ones fuzzy). `make messages` runs it; tests/test_i18n.py runs it
# on a copy of the tree and fails while any entry is untranslated or fuzzy. Needs GNU gettext.
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
IGNORE="--ignore=.venv --ignore=var --ignore=tests --ignore=bench --ignore=scripts --ignore=docker --ignore=static/vendor"
$PY manage.py makemessages -l es --no-location --no-obsolete $IGNORE -v 0
$PY manage.py makemessages -l es -d djangojs --no-location --no-obsolete $IGNORE -v 0
