# leakscope: `make demo` installs what is missing, builds, and runs the bundled leaky example;
# `make test` runs every test; `make bench` runs the side-by-side benchmark; `make install`
# installs the CLI, the agent, the bash completion and the man page under PREFIX (and DESTDIR).
BUILD ?= build
PREFIX ?= /usr/local
.PHONY: deps build demo test bench clean install
deps:
	@./scripts/install-deps.sh
$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j2
demo: build
	rm -f $(BUILD)/demo.lsc && $(BUILD)/leakscope run -q --interval 0.25 -o $(BUILD)/demo.lsc -- python3 examples/leaky_service.py && $(BUILD)/leakscope report $(BUILD)/demo.lsc
test: build
	cd $(BUILD) && ctest --output-on-failure
bench: build
	python3 bench/run.py
install: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j2
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)
clean:
	rm -rf $(BUILD)
