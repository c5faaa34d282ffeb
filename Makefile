# mailcore: the front door.  Everything real happens in CMakeLists.txt and
# scripts/; these targets only name the common steps.
#
#   make          build everything into build/bin (and build/asan/bin)
#   make run      build, then start a development instance (scripts/devinstance.sh)
#   make test     build, then run every test under ctest
#   make bench    build, then run the benchmarks (bench/)
#   make fuzz     build the libFuzzer targets with clang and run each briefly
#   make install  install programs, config example and systemd unit (PREFIX=/usr)

BUILD   ?= build
PREFIX  ?= /usr
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps run test bench fuzz install clean

all: deps
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

deps:
	@scripts/deps.sh

run: all
	scripts/devinstance.sh $(BUILD)

test: all
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

bench: all
	@if [ -x bench/run.sh ]; then bench/run.sh $(BUILD); else echo "no benchmarks yet"; fi

fuzz: deps
	cmake -S . -B $(BUILD)-fuzz -DMAILCORE_FUZZ=ON -DMAILCORE_ASAN=OFF -DCMAKE_C_COMPILER=clang >/dev/null
	cmake --build $(BUILD)-fuzz -j$(JOBS)
	scripts/fuzz.sh $(BUILD)-fuzz

install: all
	scripts/install.sh $(BUILD) $(PREFIX)

clean:
	rm -rf $(BUILD) $(BUILD)-fuzz
