# multiboot.mk - build the multiboot test guest that QEMU boots with -kernel
# (tests/check-qemu.sh). Included by the top-level Makefile after BUILD is
# set (default: build). The guest is preprocessed and assembled by
# $(MULTIBOOT_CC) (default $(CC), without CFLAGS) and linked by
# $(MULTIBOOT_LD) (default ld). Provides:
#
#   MULTIBOOT_GUEST   32-bit multiboot v1 ELF, loaded at 1 MiB
#
# QEMU's multiboot loader takes only 32-bit ELF (or the a.out kludge).
# -Ttext-segment puts the first loaded byte (the ELF headers) at 1 MiB, so
# nothing lands below it; the multiboot header, first in .text, is then at
# file offset 4 KiB, inside the first 8 KiB where loaders look for it.

BUILD ?= build

MULTIBOOT_SRCDIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
MULTIBOOT_OUT    := $(BUILD)/guest

# Rules below must not become the includer's default goal.
multiboot_saved_default_goal := $(.DEFAULT_GOAL)

MULTIBOOT_CC ?= $(CC)
MULTIBOOT_LD ?= ld

MULTIBOOT_OBJ   := $(MULTIBOOT_OUT)/multiboot.o
MULTIBOOT_GUEST := $(MULTIBOOT_OUT)/multiboot.elf

$(MULTIBOOT_OBJ): $(MULTIBOOT_SRCDIR)/multiboot.S $(MULTIBOOT_SRCDIR)/multiboot.mk
	@mkdir -p $(@D)
	$(MULTIBOOT_CC) -m32 -nostdinc -c -o $@ $<

$(MULTIBOOT_GUEST): $(MULTIBOOT_OBJ)
	@mkdir -p $(@D)
	$(MULTIBOOT_LD) -m elf_i386 -Ttext-segment=0x100000 -e _start -o $@ $<

.PHONY: multiboot-guest
multiboot-guest: $(MULTIBOOT_GUEST)

.DEFAULT_GOAL := $(multiboot_saved_default_goal)
