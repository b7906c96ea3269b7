//! sta-bench: load generators and measurement helpers run by `bench/run`.

fn main() {
    eprintln!("usage: sta-bench <benchmark>; see bench/run");
    std::process::exit(2);
}
