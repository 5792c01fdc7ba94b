fn main() {
    std::process::exit(berth::daemon::main());
}
