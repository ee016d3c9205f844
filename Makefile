# gmem — guest memory for KVM hosts. GNU make; dependencies come from pkg-config.
#
#   make            build the library, tools and tests into $(BUILD)
#   make check      install missing packages, build, run every test
#   make run        install missing packages, build, show caps, run the example VMM
#   make check-kernels  boot Debian's 6.1, 6.12, 6.18, 7.x and ../shared/kernels under QEMU, run the suite in each
#   make kernel-table   put the last check-kernels matrix into README.md
#   make torture    the torture harness for TORTURE_SECONDS (1800) under swap pressure, gmemd under systemd
#   make asan       build and run the tests under AddressSanitizer + UBSan
#   make fuzz       libFuzzer (clang, ASan+UBSan) on the request path, the fd-store parser, the D-Bus methods, the Firecracker handshake and every snapshot reader, FUZZ_SECONDS each
#   make install    PREFIX=/usr/local DESTDIR= (and LIBDIR=, SYSTEMDUNITDIR=, ... each overridable)
#   make deb        Debian packages with debhelper, lintian-checked, into $(BUILD)/deb

BUILD ?= build
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
# the developer tools (gmem-bench, gmem-example-vmm) stay out of $PATH
LIBEXECDIR ?= $(PREFIX)/libexec
# the multiarch directory where the compiler has one (Debian's ld.so searches it under /usr/local too)
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
LIBDIR ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
# the example config goes with the daemon (Debian: /usr/share/doc/gmemd)
DOCDIR ?= $(DATADIR)/doc/gmemd
SYSCONFDIR ?= /etc
# Installed into /usr, the directories systemd, D-Bus and bash-completion name in their pkg-config
# files (/lib/systemd/system on Debian 12, /usr/lib/systemd/system later); elsewhere under PREFIX.
pc_var = $(if $(filter /usr,$(PREFIX)),$(shell $(PKG_CONFIG) --variable=$(2) $(1) 2>/dev/null))
or_default = $(if $(1),$(1),$(2))
SYSTEMDUNITDIR ?= $(call or_default,$(call pc_var,systemd,systemdsystemunitdir),$(PREFIX)/lib/systemd/system)
SYSUSERSDIR ?= $(call or_default,$(call pc_var,systemd,sysusersdir),$(PREFIX)/lib/sysusers.d)
TMPFILESDIR ?= $(call or_default,$(call pc_var,systemd,tmpfilesdir),$(PREFIX)/lib/tmpfiles.d)
DBUSDATADIR ?= $(call or_default,$(call pc_var,dbus-1,datadir),$(DATADIR))
DBUSPOLICYDIR ?= $(DBUSDATADIR)/dbus-1/system.d
DBUSSERVICEDIR ?= $(call or_default,$(call pc_var,dbus-1,system_bus_services_dir),$(DBUSDATADIR)/dbus-1/system-services)
DBUSIFACEDIR ?= $(call or_default,$(call pc_var,dbus-1,interfaces_dir),$(DBUSDATADIR)/dbus-1/interfaces)
POLKITACTIONDIR ?= $(call or_default,$(call pc_var,polkit-gobject-1,policydir),$(DATADIR)/polkit-1/actions)
BASHCOMPDIR ?= $(call or_default,$(call pc_var,bash-completion,completionsdir),$(DATADIR)/bash-completion/completions)
MANDIR ?= $(DATADIR)/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wno-missing-field-initializers -Wstrict-prototypes -Wformat=2
ifeq ($(CI),true)
WARNINGS += -Werror
endif
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif

# deferred (=), so a sub-make started after setup-deps.sh sees the freshly installed packages
CJSON_CFLAGS = $(shell $(PKG_CONFIG) --cflags libcjson)
CJSON_LIBS = $(shell $(PKG_CONFIG) --libs libcjson)
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check)
LIBEVENT_CFLAGS = $(shell $(PKG_CONFIG) --cflags libevent_pthreads)
LIBEVENT_LIBS = $(shell $(PKG_CONFIG) --libs libevent libevent_pthreads)
SYSTEMD_CFLAGS = $(shell $(PKG_CONFIG) --cflags libsystemd)
SYSTEMD_LIBS = $(shell $(PKG_CONFIG) --libs libsystemd)

BASE_CFLAGS = -std=gnu11 $(WARNINGS) -fvisibility=hidden -fPIC -pthread -D_GNU_SOURCE \
	-Iinclude -Ilibgmem -Itools -MMD -MP
# CPPFLAGS, CFLAGS and LDFLAGS as the environment gives them (dpkg-buildflags: fortify, PIE, relro, now)
ALL_CFLAGS = $(BASE_CFLAGS) $(CJSON_CFLAGS) $(CPPFLAGS) $(CFLAGS)
$(BUILD)/obj/gmemd/%.o: ALL_CFLAGS += $(LIBEVENT_CFLAGS) $(SYSTEMD_CFLAGS)

# The version is written once, in the public header; everything else (the .pc, the file name of
# the library, debian/changelog by tests/check-version.sh) follows it.
VERSION := $(shell sed -n 's/^\#define GMEM_VERSION_STRING "\(.*\)"/\1/p' include/gmem/gmem.h)
SOVERSION := 0
LIBVERSION := $(VERSION).0

LIB_SRCS := $(wildcard libgmem/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB_SO := $(BUILD)/lib/libgmem.so.$(LIBVERSION)
LIB_A := $(BUILD)/lib/libgmem.a
LIB_PC := $(BUILD)/lib/pkgconfig/libgmem.pc

# binaries find libgmem next to them in the build tree and after install alike
# (a distribution's build sets RPATH= : its libgmem is where ld.so looks)
RPATH ?= -Wl,-rpath,'$$ORIGIN/../lib'

DEV_TOOLS := $(BUILD)/bin/gmem-example-vmm $(BUILD)/bin/gmem-bench
TOOLS := $(BUILD)/bin/gmemctl $(DEV_TOOLS)
DAEMON := $(BUILD)/bin/gmemd
# sizes and numbers in one notation: the tools' and gmemd.json's
PARSE_SIZE := $(BUILD)/obj/tools/parse-size.o
GMEMD_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard gmemd/*.c)) $(PARSE_SIZE)
CLI_UTIL := $(BUILD)/obj/tools/cli-util.o $(PARSE_SIZE)
TEST_SRCS := $(wildcard tests/test-*.c)
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_SCRIPTS := $(wildcard tests/check-*.sh)
# the torture harness (tests/torture/): make torture, and a bounded run in check-torture.sh
TORTURE := $(BUILD)/tests/gmem-torture
TORTURE_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/torture/*.c))
TORTURE_SECONDS ?= 1800
# gmemd without its main(): what the fuzz targets drive in-process
GMEMD_CORE_OBJS := $(filter-out %/main.o,$(GMEMD_OBJS))
FUZZ_TARGETS := request metadata dbus firecracker snapshot
FUZZ_REPLAYS := $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz-%-replay)
FUZZ_SECONDS ?= 120

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: torture torture-run fuzz all lib tools tests check check-run check-kernels check-kernels-run kernel-table run run-run bench asan deps install deb clean
all: lib tools tests

include guest/guest.mk
# the multiboot guest QEMU boots in tests/check-qemu.sh (MULTIBOOT_GUEST: its path)
-include guest/multiboot.mk

lib: $(LIB_SO) $(LIB_A) $(LIB_PC)
tools: $(TOOLS) $(DAEMON)
tests: $(TESTS) $(FUZZ_REPLAYS) $(MULTIBOOT_GUEST) $(TORTURE)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB_SO): $(LIB_OBJS) libgmem/libgmem.sym
	@mkdir -p $(dir $@)
	$(CC) -shared -pthread -Wl,-soname,libgmem.so.$(SOVERSION) -Wl,--version-script=libgmem/libgmem.sym \
		-Wl,--no-undefined $(LDFLAGS) -o $@ $(LIB_OBJS) $(CJSON_LIBS)
	ln -sf libgmem.so.$(LIBVERSION) $(BUILD)/lib/libgmem.so.$(SOVERSION)
	ln -sf libgmem.so.$(SOVERSION) $(BUILD)/lib/libgmem.so

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# written with the directories in force, so `make install PREFIX=...` after a plain `make` is right
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	-e 's|@VERSION@|$(VERSION)|' libgmem/libgmem.pc.in
$(LIB_PC): libgmem/libgmem.pc.in Makefile
	@mkdir -p $(dir $@)
	$(PC_SED) > $@

MINIVM_OBJS := $(BUILD)/obj/tools/minivm.o $(GUEST_BLOB)

$(BUILD)/bin/gmemctl: $(BUILD)/obj/tools/gmemctl.o $(CLI_UTIL) $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) -pthread $(LDFLAGS) $(RPATH) -o $@ $(BUILD)/obj/tools/gmemctl.o $(CLI_UTIL) -L$(BUILD)/lib -lgmem $(CJSON_LIBS)

$(BUILD)/bin/gmem-example-vmm: $(BUILD)/obj/tools/example-vmm.o $(CLI_UTIL) $(MINIVM_OBJS) $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) -pthread $(LDFLAGS) $(RPATH) -o $@ $(BUILD)/obj/tools/example-vmm.o $(CLI_UTIL) $(MINIVM_OBJS) -L$(BUILD)/lib -lgmem

# The daemon links the static library: it shares libgmem's internal helpers (errors, macros).
$(DAEMON): $(GMEMD_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -pthread $(LDFLAGS) -o $@ $(GMEMD_OBJS) $(LIB_A) $(CJSON_LIBS) $(LIBEVENT_LIBS) $(SYSTEMD_LIBS)

$(BUILD)/bin/gmem-bench: $(BUILD)/obj/tools/gmem-bench.o $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) -pthread $(LDFLAGS) $(RPATH) -o $@ $< -L$(BUILD)/lib -lgmem

# Tests link the static library: some reach internal pieces (the injected ioctl layer, the range set).
TEST_COMMON := $(BUILD)/obj/tests/gmem-test.o $(BUILD)/obj/tests/pressure.o
$(BUILD)/obj/tests/%.o: ALL_CFLAGS += $(CHECK_CFLAGS)
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_COMMON) $(MINIVM_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -pthread $(CFLAGS) $(LDFLAGS) -o $@ $< $(TEST_COMMON) $(MINIVM_OBJS) $(LIB_A) $(CJSON_LIBS) $(CHECK_LIBS)

$(TORTURE): $(TORTURE_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -pthread $(CFLAGS) $(LDFLAGS) -o $@ $(TORTURE_OBJS) $(LIB_A) $(CJSON_LIBS)

# The fuzz targets as plain programs that replay the corpus in fuzz/corpus (tests/check-fuzz-corpus.sh).
$(BUILD)/obj/fuzz/%.o: ALL_CFLAGS += $(LIBEVENT_CFLAGS) $(SYSTEMD_CFLAGS)
$(BUILD)/tests/fuzz-%-replay: $(BUILD)/obj/fuzz/fuzz-%.o $(BUILD)/obj/fuzz/replay.o $(GMEMD_CORE_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -pthread $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/obj/fuzz/replay.o $(GMEMD_CORE_OBJS) $(LIB_A) \
		$(CJSON_LIBS) $(LIBEVENT_LIBS) $(SYSTEMD_LIBS)

fuzz: deps
	@scripts/setup-deps.sh clang
	@BUILD=$(BUILD)-fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" scripts/fuzz.sh

deps:
	@scripts/setup-deps.sh

# (the packaging tools too: tests/check-deb.sh builds, lintian-checks and installs the packages)
check:
	@scripts/setup-deps.sh deb
	@$(MAKE) --no-print-directory check-run

# objects made through pattern rules are kept, not rebuilt on every run
.SECONDARY:

check-run: all
	@BUILD=$(BUILD) TEST_LDFLAGS="$(LDFLAGS)" tests/run-tests.sh $(TESTS) $(TEST_SCRIPTS)

check-kernels:
	@scripts/setup-deps.sh kernels
	@$(MAKE) --no-print-directory check-kernels-run

check-kernels-run: all
	@BUILD=$(BUILD) tests/kernels/check-kernels.sh

kernel-table:
	@python3 tests/kernels/readme-table.py $(BUILD)/kernels/matrix.tsv README.md

# the torture harness for TORTURE_SECONDS (default 30 minutes) under memory pressure, gmemd under
# systemd (tests/torture.sh); TORTURE_SEED=N repeats a run
torture:
	@scripts/setup-deps.sh
	@$(MAKE) --no-print-directory torture-run

torture-run: all
	@BUILD=$(BUILD) TORTURE_SECONDS=$(TORTURE_SECONDS) tests/torture.sh

run: deps
	@$(MAKE) --no-print-directory run-run

run-run: all
	@BUILD=$(BUILD) scripts/run-demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/bench.sh

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" check-run

# builds what it installs, and no test
install: lib tools
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/gmem $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR)
	install -m 0644 $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf libgmem.so.$(LIBVERSION) $(DESTDIR)$(LIBDIR)/libgmem.so.$(SOVERSION)
	ln -sf libgmem.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libgmem.so
	install -m 0644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 0644 include/gmem/gmem.h $(DESTDIR)$(INCLUDEDIR)/gmem/
	$(PC_SED) > $(DESTDIR)$(PKGCONFIGDIR)/libgmem.pc
	install -m 0755 $(BUILD)/bin/gmemctl $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(LIBEXECDIR)/gmem
	install -m 0755 $(DEV_TOOLS) $(DESTDIR)$(LIBEXECDIR)/gmem/
	install -d $(DESTDIR)$(SBINDIR)
	install -m 0755 $(DAEMON) $(DESTDIR)$(SBINDIR)/
	$(foreach s,$(wildcard man/*.[1-8]),install -D -m 0644 $(s) $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(s)))/$(notdir $(s));)
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	$(foreach u,$(wildcard systemd/*.service systemd/*.socket),\
		sed 's|@SBINDIR@|$(SBINDIR)|g' $(u) > $(DESTDIR)$(SYSTEMDUNITDIR)/$(notdir $(u));)
	install -D -m 0644 systemd/gmemd.sysusers $(DESTDIR)$(SYSUSERSDIR)/gmemd.conf
	install -D -m 0644 systemd/gmemd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/gmemd.conf
	install -D -m 0644 dbus/org.gmem.Broker1.conf $(DESTDIR)$(DBUSPOLICYDIR)/org.gmem.Broker1.conf
	install -D -m 0644 dbus/org.gmem.Broker1.service $(DESTDIR)$(DBUSSERVICEDIR)/org.gmem.Broker1.service
	install -D -m 0644 dbus/org.gmem.Broker1.xml $(DESTDIR)$(DBUSIFACEDIR)/org.gmem.Broker1.xml
	install -D -m 0644 polkit/org.gmem.Broker1.policy $(DESTDIR)$(POLKITACTIONDIR)/org.gmem.Broker1.policy
	install -D -m 0644 completion/gmemctl.bash $(DESTDIR)$(BASHCOMPDIR)/gmemctl
	install -D -m 0644 docs/gmemd.json.example $(DESTDIR)$(DOCDIR)/examples/gmemd.json

# Debian packages (debian/): dpkg-buildpackage -us -uc -b, the .debs then moved into $(BUILD)/deb
deb:
	@scripts/setup-deps.sh deb
	@scripts/make-deb.sh $(BUILD)/deb

clean:
	rm -rf $(BUILD) build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
