# The two commands of the README:
#   make demo   set up, then build the origin post's model on the CPU stand-in image
#   make test   set up, then run the tests (what .ci/run does)
VENV   := .venv
TRTKIT := $(VENV)/bin/trtkit
STANDIN_ARGS := --image trtkit/standin --tag 19.07-py3

.PHONY: setup demo test readme-tags
setup: $(TRTKIT)
	bash images/start-engine.sh
	bash images/build.sh

# The venv is made again when the dependencies change. trtkit is installed editable: it runs from the tree.
$(TRTKIT): pyproject.toml
	python3 -m venv --clear $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(TRTKIT)

examples/models/origin_lstm.h5:
	docker run --rm -u $$(id -u):$$(id -g) -e HOME=/tmp -v $(CURDIR):/repo -w /repo trtkit/standin:19.07-py3 \
	  python3 examples/make_models.py examples/models origin_lstm.h5

demo: setup examples/models/origin_lstm.h5
	$(TRTKIT) build examples/models/origin_lstm.h5 $(STANDIN_ARGS)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q

# The README's tag table is generated from toolkit/tags.py.
readme-tags: $(TRTKIT)
	$(VENV)/bin/python -m trtkit.tags README.md
