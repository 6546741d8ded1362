//! Links spandsp (Debian libspandsp-dev) for G.722; libopus is linked by the opus2 crate.
fn main() {
    if let Err(e) = pkg_config::Config::new()
        .atleast_version("0.0.6")
        .probe("spandsp")
    {
        panic!("kentongan-media needs spandsp for G.722: {e}\nhint: apt-get install libspandsp-dev pkg-config");
    }
}
