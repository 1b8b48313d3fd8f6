# danube-connect: one GNU Makefile for the whole tree.
#
#   make                  build every library and program into $(BUILD)
#   make check            build and run every test (unit, then integration)
#   make check SANITIZE=1 the same under ASan + UBSan (in build/sanitize)
#   make lint             check formatting against .clang-format
#   make bench            run the benchmarks in scripts/ and print figures
#   make install PREFIX=/usr/local DESTDIR=...
#   make clean

VERSION    := 0.1.0
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/libexec
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/danube-connect
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DESTDIR    ?=

V          ?= 0
ifeq ($(V),0)
Q          := @
quiet       = @printf '  %-6s %s\n' $(1) $(2);
else
Q          :=
quiet       =
endif

ifeq ($(SANITIZE),1)
BUILD      ?= build/sanitize
else
BUILD      ?= build
endif

CC         ?= cc
PKG_CONFIG ?= pkg-config
PYTHON     ?= /usr/bin/python3
NANOPB_GEN ?= nanopb_generator.py

PKGS       := libnghttp2 openssl libcurl libpq libmosquitto inih
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

# libev and nng ship no .pc file; nanopb's runtime is a static library
# built with PB_ENABLE_MALLOC.
LIBS       := $(PKG_LIBS) -lev -lnng -lprotobuf-nanopb -lpthread -lm

WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wno-unused-parameter
DEFS       := -D_GNU_SOURCE -DPB_ENABLE_MALLOC=1 -DDC_VERSION='"$(VERSION)"' \
              -DDC_SYSCONFDIR='"$(SYSCONFDIR)"' -DDC_LIBEXECDIR='"$(LIBEXECDIR)"'
ifeq ($(SANITIZE),1)
OPT        := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=undefined
LDSAN      := -fsanitize=address,undefined
else
OPT        := -O2 -g -D_FORTIFY_SOURCE=2
LDSAN      :=
endif
CFLAGS     ?=
CFLAGS     += -std=gnu11 $(OPT) $(WARN) $(DEFS) -MMD -MP \
              -Ilibshared -I$(BUILD)/gen $(PKG_CFLAGS)
LDFLAGS    ?=
LDFLAGS    += $(LDSAN)

# ---------------------------------------------------------------- sources
PROTOS     := $(shell find proto -name '*.proto' | sort)
PROTO_C    := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb.c,$(PROTOS))
PROTO_H    := $(PROTO_C:.c=.h)
PROTO_PY   := $(patsubst proto/%.proto,$(BUILD)/py/%_pb2.py,$(PROTOS))

LIB_SRCS   := $(shell find libshared -name '*.c' | sort)
LIB_OBJS   := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS)) \
              $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))
LIBSHARED  := $(BUILD)/libshared.a

SUPD_SRCS  := $(wildcard supervisor/*.c)
CTL_SRCS   := $(wildcard supervisor/ctl/*.c)
WORKERS    := $(notdir $(patsubst %/,%,$(wildcard workers/*/)))
TESTWORKERS:= $(notdir $(patsubst %/,%,$(wildcard tests/workers/*/)))

PROGRAMS   := $(if $(SUPD_SRCS),$(BUILD)/danube-connectd) \
              $(if $(CTL_SRCS),$(BUILD)/danube-connectctl) \
              $(addprefix $(BUILD)/workers/,$(WORKERS))

TESTLIB_SRCS := $(wildcard tests/lib/*.c)
TESTLIB    := $(BUILD)/libtest.a
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRCS))
TESTWORKER_BINS := $(addprefix $(BUILD)/tests/workers/,$(TESTWORKERS))

MANPAGES   := $(wildcard man/*.[1-8])
SRC_FILES  = $(shell find libshared supervisor workers tests proto -name '*.[ch]' \
               -not -path 'tests/danube-broker/*' | sort)

.PHONY: all tests check check-unit check-integration check-valgrind check-danube soak lint format bench \
        install clean demo fuzz
.DEFAULT_GOAL := all
.SECONDARY:

all: $(LIBSHARED) $(PROGRAMS) $(PROTO_PY)

# ---------------------------------------------------------------- protobuf
# nanopb output is generated at build time, never committed.
$(BUILD)/gen/%.pb.c $(BUILD)/gen/%.pb.h: proto/%.proto $(wildcard proto/*/*.options proto/*.options)
	@mkdir -p $(BUILD)/gen
	$(call quiet,NANOPB,$<)$(NANOPB_GEN) -q -I proto -D $(BUILD)/gen $(if $(wildcard proto/$*.options),-f proto/$*.options) $<

$(BUILD)/py/%_pb2.py: proto/%.proto
	@mkdir -p $(BUILD)/py
	$(call quiet,PROTOC,$<)protoc -I proto --python_out=$(BUILD)/py $<

# Every object may include any generated header.
$(BUILD)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$<)$(CC) $(CFLAGS) -c -o $@ $<

$(LIBSHARED): $(LIB_OBJS)
	@rm -f $@
	$(call quiet,AR,$@)$(AR) rcs $@ $^

# ---------------------------------------------------------------- programs
$(BUILD)/danube-connectd: $(patsubst %.c,$(BUILD)/obj/%.o,$(SUPD_SRCS)) $(LIBSHARED)
	$(call quiet,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/danube-connectctl: $(patsubst %.c,$(BUILD)/obj/%.o,$(CTL_SRCS)) $(LIBSHARED)
	$(call quiet,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

.SECONDEXPANSION:
# No % inside the functions below (make substitutes it first, word by word); $$* is the stem.
$(BUILD)/workers/%: $$(foreach f,$$(wildcard workers/$$*/*.c),$(BUILD)/obj/$$(basename $$f).o) $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(call quiet,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/workers/%: $$(foreach f,$$(wildcard tests/workers/$$*/*.c),$(BUILD)/obj/$$(basename $$f).o) $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(call quiet,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# ---------------------------------------------------------------- tests
# -iquote: "mosquitto.h" is the test broker, <mosquitto.h> still libmosquitto.
$(BUILD)/obj/tests/%.o: CFLAGS += -iquote tests/lib $(CHECK_CFLAGS)

$(TESTLIB): $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRCS))
	@rm -f $@
	$(call quiet,AR,$@)$(AR) rcs $@ $^

# libshared.a last: objects a test links itself (below) may use it too.
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB) $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(call quiet,LD,$@)$(CC) $(LDFLAGS) -o $@ $(filter-out $(LIBSHARED),$^) $(LIBSHARED) \
	    $(CHECK_LIBS) $(LIBS)

# The supervisor's decision table is pure: its unit test links the object itself.
$(BUILD)/tests/unit/test_worker_fsm: $(BUILD)/obj/supervisor/worker_fsm.o
$(BUILD)/tests/unit/test_syslog_fwd: $(BUILD)/obj/supervisor/syslog_fwd.o
# So are source-postgres's decoder, events and positions.
SPG_PURE := pgoutput event position
$(BUILD)/tests/unit/test_pgoutput: $(SPG_PURE:%=$(BUILD)/obj/workers/source-postgres/%.o)

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(TESTLIB) $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(call quiet,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS)

TEST_ENV = DC_BUILD_DIR=$(abspath $(BUILD)) DC_SRC_DIR=$(CURDIR) DC_PYTHON=$(PYTHON) \
           DC_SANITIZE=$(SANITIZE)

# Builds every test program without running one (then run one by hand, with
# the environment TEST_ENV gives and CK_RUN_CASE to pick a case).
tests: all $(UNIT_BINS) $(INTEG_BINS) $(TESTWORKER_BINS)

check: all $(UNIT_BINS) $(INTEG_BINS) $(TESTWORKER_BINS) $(FUZZ_BINS)
	@$(call run-fuzzers,-runs=50000 -max_total_time=10)
	@$(TEST_ENV) scripts/run-tests $(UNIT_BINS) $(INTEG_BINS)

check-unit: $(UNIT_BINS)
	@$(TEST_ENV) scripts/run-tests $(UNIT_BINS)

check-integration: all $(INTEG_BINS) $(TESTWORKER_BINS)
	@$(TEST_ENV) scripts/run-tests $(INTEG_BINS)

# Programs the integration tests start run under valgrind's leak checker.
check-valgrind: all $(INTEG_BINS) $(TESTWORKER_BINS)
	@$(TEST_ENV) DC_VALGRIND=1 CK_DEFAULT_TIMEOUT=600 scripts/run-tests $(INTEG_BINS)

# The long runs (100,000 messages where check proves the same with thousands).
SOAK_TESTS := test_client test_sink_postgres
soak: all $(TESTWORKER_BINS) $(addprefix $(BUILD)/tests/integration/,$(SOAK_TESTS))
	@$(TEST_ENV) DC_SOAK=1 CK_TIMEOUT_MULTIPLIER=10 scripts/run-tests \
	    $(addprefix $(BUILD)/tests/integration/,$(SOAK_TESTS))

# The conformance run: the client, CLI, runtime and end-to-end tests against a
# real danube-broker binary (README: "Against the real broker"). Tests that
# need the test broker's own options or restart the broker say SKIP there.
DANUBE_BROKER ?=
DANUBE_TESTS  := test_client test_ctl_produce test_runtime test_e2e
check-danube: all $(TESTWORKER_BINS) $(addprefix $(BUILD)/tests/integration/,$(DANUBE_TESTS))
	@if [ -z "$(DANUBE_BROKER)" ]; then \
	    echo "check-danube needs DANUBE_BROKER=PATH, a danube-broker binary (README: Against the real broker)"; \
	    exit 2; fi
	@$(TEST_ENV) DC_DANUBE_BROKER=$(abspath $(DANUBE_BROKER)) scripts/run-tests \
	    $(addprefix $(BUILD)/tests/integration/,$(DANUBE_TESTS))

# ---------------------------------------------------------------- fuzzing
# libFuzzer targets: tests/fuzz/*.c, built by clang against libshared compiled
# by clang in $(BUILD)/fuzz. `make fuzz` runs each for 60 s (corpus kept in
# $(BUILD)/fuzz/corpus); `make check` runs each briefly and fails on a crash.
FUZZ_SRCS    := $(wildcard tests/fuzz/*.c)
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/bin/%,$(FUZZ_SRCS))
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=gnu11 -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) $(WARN) $(DEFS) \
                -Ilibshared -I$(BUILD)/gen $(PKG_CFLAGS)
FUZZ_LIB     := $(BUILD)/fuzz/libshared.a
FUZZ_LIB_OBJS := $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(LIB_SRCS)) \
                 $(patsubst $(BUILD)/gen/%.c,$(BUILD)/fuzz/obj/gen/%.o,$(PROTO_C))

$(BUILD)/fuzz/obj/gen/%.o: $(BUILD)/gen/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(call quiet,FUZZCC,$<)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(call quiet,FUZZCC,$<)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@rm -f $@
	$(call quiet,AR,$@)$(AR) rcs $@ $^

$(BUILD)/fuzz/bin/%: $(BUILD)/fuzz/obj/tests/fuzz/%.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(call quiet,LD,$@)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ \
	    $(filter-out $(FUZZ_LIB),$^) $(FUZZ_LIB) $(LIBS)

# $(1): libFuzzer options. Output goes to a log, shown only on failure.
run-fuzzers = $(foreach f,$(FUZZ_BINS),echo "=== $(notdir $(f))" && \
	mkdir -p $(BUILD)/fuzz/corpus/$(notdir $(f)) && \
	{ $(f) $(1) $(BUILD)/fuzz/corpus/$(notdir $(f)) > $(f).log 2>&1 || \
	  { cat $(f).log; echo "fuzzer $(notdir $(f)) failed"; exit 1; }; } && \
	tail -n 1 $(f).log &&) true

fuzz: $(FUZZ_BINS)
	@$(call run-fuzzers,-max_total_time=60)

# FUZZ_BINS is defined after the check rule: add them to its prerequisites here.
check: $(FUZZ_BINS)

# source-postgres's decoder is not in libshared: its target links the objects.
$(BUILD)/fuzz/bin/fuzz_pgoutput: $(SPG_PURE:%=$(BUILD)/fuzz/obj/workers/source-postgres/%.o)

# ---------------------------------------------------------------- tools
lint:
	@scripts/lint $(SRC_FILES)

format:
	clang-format -i $(SRC_FILES)

bench: all $(TESTWORKER_BINS)
	@$(TEST_ENV) scripts/bench

# The quick start: installs what is missing, builds, runs the example (scripts/demo).
demo:
	@DC_BUILD_DIR=$(abspath $(BUILD)) DC_PYTHON=$(PYTHON) \
	    DANUBE_BROKER=$(if $(DANUBE_BROKER),$(abspath $(DANUBE_BROKER))) scripts/demo

# ---------------------------------------------------------------- install
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(LIBEXECDIR)/danube-connect \
	    $(DESTDIR)$(SYSCONFDIR)/danube-connect/connectors.d $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(DATADIR)
	$(if $(SUPD_SRCS),install -m 0755 $(BUILD)/danube-connectd $(DESTDIR)$(SBINDIR)/)
	$(if $(CTL_SRCS),install -m 0755 $(BUILD)/danube-connectctl $(DESTDIR)$(BINDIR)/)
	$(foreach w,$(WORKERS),install -m 0755 $(BUILD)/workers/$(w) $(DESTDIR)$(LIBEXECDIR)/danube-connect/$(w) &&) true
	$(foreach m,$(MANPAGES),install -d $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m))) && \
	    install -m 0644 $(m) $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/ &&) true
	$(foreach f,$(wildcard etc/*.ini),install -m 0644 $(f) $(DESTDIR)$(SYSCONFDIR)/danube-connect/ &&) true
	$(foreach f,$(wildcard etc/connectors.d/*.ini),install -m 0644 $(f) \
	    $(DESTDIR)$(SYSCONFDIR)/danube-connect/connectors.d/$(notdir $(f)).example &&) true
	$(foreach f,$(wildcard etc/*.sql),install -m 0644 $(f) $(DESTDIR)$(DATADIR)/ &&) true
	$(foreach f,$(wildcard etc/*.service),sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    $(f) > $(DESTDIR)$(UNITDIR)/$(notdir $(f)) &&) true

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
