# guest.mk - build the checksum test guest and embed it in a host object.
#
# Include from the top-level Makefile after setting BUILD (default: build;
# it is read at include time). The host-side blob object is built with
# $(CC) $(CPPFLAGS) $(CFLAGS). The guest itself is preprocessed and
# assembled by $(GUEST_CC) (default $(CC), without CFLAGS) and shares its
# ABI constants with tools/minivm.h. Provides:
#
#   GUEST_BIN   flat binary image of the guest (load at GPA 0x1000)
#   GUEST_BLOB  host object defining minivm_guest_checksum_start/_end;
#               link it into anything that uses tools/minivm.c

BUILD ?= build

# Directory of this fragment, so it works whether included as guest/guest.mk
# or by absolute path from elsewhere. Must be computed before other includes.
GUEST_SRCDIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
GUEST_OUT    := $(BUILD)/guest

# Rules below must not become the includer's default goal.
guest_saved_default_goal := $(.DEFAULT_GOAL)

GUEST_CC ?= $(CC)
GUEST_LD ?= ld
GUEST_INC := $(GUEST_SRCDIR)/../tools

GUEST_OBJ  := $(GUEST_OUT)/checksum.o
GUEST_BIN  := $(GUEST_OUT)/checksum.bin
GUEST_BLOB := $(GUEST_OUT)/checksum-blob.o

# A 64-bit object: the code starts in 16-bit mode and switches to 64-bit.
$(GUEST_OBJ): $(GUEST_SRCDIR)/checksum.S $(GUEST_INC)/minivm.h
	@mkdir -p $(@D)
	$(GUEST_CC) -m64 -nostdinc -I$(GUEST_INC) -c -o $@ $<

# 0x1000 is MINIVM_GUEST_ENTRY.
$(GUEST_BIN): $(GUEST_OBJ)
	@mkdir -p $(@D)
	$(GUEST_LD) -m elf_x86_64 -Ttext=0x1000 -e _start --oformat=binary -o $@ $<

$(GUEST_BLOB): $(GUEST_SRCDIR)/checksum-blob.S $(GUEST_BIN)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wa,-I$(GUEST_OUT) -c -o $@ $<

.PHONY: guest
guest: $(GUEST_BLOB)

.DEFAULT_GOAL := $(guest_saved_default_goal)
