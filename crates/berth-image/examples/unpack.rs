//! Unpacks one layer (a tar, gzip-compressed or not) into an empty directory, as the
//! image store does, and prints its digests: the image store's half of benches/unpack.sh.
//!
//! `unpack LAYER TARGET`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [layer, target] = args.as_slice() else {
        return Err("usage: unpack LAYER TARGET".into());
    };
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(layer)?);
    let unpacked = berth_image::unpack_layer(file, std::path::Path::new(target))?;
    println!("{} {} {}", unpacked.digest, unpacked.diff_id, unpacked.size);
    Ok(())
}
