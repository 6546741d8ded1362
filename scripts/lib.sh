# Shared by scripts/build and scripts/test: install what the host lacks, from Debian only.

# need_debs PKG...: installs the Debian packages that are not installed yet.
need_debs() {
    local missing=()
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: missing Debian packages: ${missing[*]}" >&2
        echo "hint: run as root, or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "  Installing ${missing[*]}" >&2
    # Some machines come with qemu-utils from bookworm-backports; bookworm's qemu-system-x86
    # then conflicts with it, so the emulator must come from backports too.
    local want=() bpo=
    if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q '~bpo12'; then bpo=1; fi
    for pkg in "${missing[@]}"; do
        case "$pkg" in
            qemu-system-x86|qemu-system-common|qemu-system-data|qemu-utils)
                # apt takes a /suite only for the package named, not its dependencies: the
                # emulator's own family (and the SeaBIOS it wants) must be named too.
                if [ -n "$bpo" ]; then
                    want+=("$pkg/bookworm-backports")
                    [ "$pkg" = qemu-system-x86 ] && want+=(qemu-system-common/bookworm-backports
                        qemu-system-data/bookworm-backports seabios/bookworm-backports)
                else want+=("$pkg"); fi ;;
            *) want+=("$pkg") ;;
        esac
    done
    if [ -n "$bpo" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            > /etc/apt/sources.list.d/kentongan-backports.sources
        unset KENTONGAN_APT_UPDATED
    fi
    missing=("${want[@]}")
    if [ -z "${KENTONGAN_APT_UPDATED:-}" ]; then
        apt-get update -qq || { echo "error: apt-get update failed" >&2; echo "hint: check /etc/apt/sources.list and the network" >&2; exit 1; }
        export KENTONGAN_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { echo "error: could not install ${missing[*]}" >&2; echo "hint: run apt-get install ${missing[*]} to see why" >&2; exit 1; }
}

# Host tools the image builder runs (kentongan-image's preflight checks the same list).
BUILD_DEBS=(mmdebstrap squashfs-tools xorriso grub-common grub-pc-bin grub-efi-amd64-bin
            mtools dosfstools dpkg-dev eatmydata ca-certificates
            apt-utils gnupg)  # the last two: `kentongan repo` (apt-ftparchive, signing)

# What the workspace's C parts build with: SQLite (bundled) needs a C compiler, jemalloc make;
# kentongan-media links the system libopus and spandsp (G.722), found through pkg-config.
RUST_DEBS=(gcc libc6-dev make libopus-dev libspandsp-dev pkg-config)

need_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo is not installed" >&2
        echo "hint: install a Rust toolchain ≥ 1.89 (rustup), then rerun" >&2
        exit 1
    fi
}
