# Bench-only targets: the gRPC C++ peer (libgrpc++-dev, protobuf-compiler-grpc) and our
# client's driver. Never part of `make` or `make check`; scripts/bench-client runs
#   make -f Makefile -f tests/bench/bench.mk BUILD=... bench-programs
# so the main Makefile's flags, libshared and generated nanopb code are reused.

BENCH_DIR      := $(BUILD)/bench
BENCH_GEN      := $(BENCH_DIR)/gen
GRPC_PLUGIN    ?= /usr/bin/grpc_cpp_plugin
BENCH_PKGS     := grpc++ protobuf
BENCH_CXXFLAGS := -std=c++17 -O2 -g -I$(BENCH_GEN) $(shell $(PKG_CONFIG) --cflags $(BENCH_PKGS))
BENCH_CXXWARN  := -Wall -Wextra -Werror -Wno-unused-parameter
BENCH_CXXLIBS  := $(shell $(PKG_CONFIG) --libs $(BENCH_PKGS)) -lpthread
BENCH_GEN_OBJS := $(BENCH_DIR)/obj/gen/danube/DanubeApi.pb.o \
                  $(BENCH_DIR)/obj/gen/danube/DanubeApi.grpc.pb.o
BENCH_PROGRAMS := $(BENCH_DIR)/peer_server $(BENCH_DIR)/peer_producer $(BENCH_DIR)/peer_consumer \
                  $(BENCH_DIR)/dn_bench

.PHONY: bench-programs
bench-programs: $(BENCH_PROGRAMS)

# One protoc run writes all four files (a pattern rule with several targets is grouped).
$(BENCH_GEN)/%.pb.cc $(BENCH_GEN)/%.pb.h $(BENCH_GEN)/%.grpc.pb.cc $(BENCH_GEN)/%.grpc.pb.h: proto/%.proto
	@mkdir -p $(BENCH_GEN)
	$(call quiet,PROTOC,$<)protoc -I proto --cpp_out=$(BENCH_GEN) --grpc_out=$(BENCH_GEN) \
	    --plugin=protoc-gen-grpc=$(GRPC_PLUGIN) $<

# Generated code is not ours to keep warning-free.
$(BENCH_DIR)/obj/gen/%.o: $(BENCH_GEN)/%.cc
	@mkdir -p $(dir $@)
	$(call quiet,CXX,$<)$(CXX) $(BENCH_CXXFLAGS) -c -o $@ $<

$(BENCH_DIR)/obj/%.o: tests/bench/%.cc $(BENCH_GEN)/danube/DanubeApi.grpc.pb.h \
                      $(BENCH_GEN)/danube/DanubeApi.pb.h
	@mkdir -p $(dir $@)
	$(call quiet,CXX,$<)$(CXX) $(BENCH_CXXFLAGS) $(BENCH_CXXWARN) -c -o $@ $<

PEER_PROGRAMS  := $(BENCH_DIR)/peer_server $(BENCH_DIR)/peer_producer $(BENCH_DIR)/peer_consumer
$(PEER_PROGRAMS): $(BENCH_DIR)/%: $(BENCH_DIR)/obj/%.o $(BENCH_GEN_OBJS)
	$(call quiet,LD,$@)$(CXX) $(LDFLAGS) -o $@ $^ $(BENCH_CXXLIBS)

$(BENCH_DIR)/dn_bench: $(BUILD)/obj/tests/bench/dn_bench.o $(LIBSHARED)
	@mkdir -p $(dir $@)
	$(call quiet,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
