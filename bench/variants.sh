# Shared by the side-by-side variant scripts (gan_int_cls_variants.sh, sdgan_ablation.sh); source
# it after setting the defaults of steps, preset, data, items and seeds.

# Reads --steps N --preset P --data DIR --items N --seeds K into those variables.
variant_options() {
    while [ $# -gt 0 ]; do
        case $1 in
            --steps) steps=$2 ;; --preset) preset=$2 ;; --data) data=$2 ;;
            --items) items=$2 ;; --seeds) seeds=$2 ;;
            *) echo "unknown option $1" >&2; exit 2 ;;
        esac
        shift 2
    done
}

# "N cores, CPU model, M GiB": the machine line the reports end with.
machine_description() {
    echo "$(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
}
