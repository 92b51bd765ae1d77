//! Kubernetes resource quantities (`100m`, `0.5`, `64Mi`, `1G`, `2e3`) as integers that
//! can be added and compared — CPU in millicores, everything else in thousandths of its
//! unit — for the scheduler, the autoscaler and the metrics API. Depends on nothing.

/// The quantity in thousandths of its unit (millicores for CPU); None when unreadable.
pub fn milli(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .or_else(|| {
            // An exponent is a suffix only when digits follow it: `2e3`.
            text.find(['e', 'E']).filter(|&i| {
                !text[i + 1..]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-')
            })
        })
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (number, exponent) = match number.split_once(['e', 'E']) {
        Some((n, e)) => (n, e.parse::<i32>().ok()?),
        None => (number, 0),
    };
    let value: f64 = number.parse().ok()?;
    let scale: f64 = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some((value * scale * 10f64.powi(exponent) * 1000.0).round() as i128)
}

/// Thousandths written back as Kubernetes writes a quantity: `250m`, or whole units.
pub fn format_milli(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

#[cfg(test)]
mod tests {
    use super::{format_milli, milli};

    #[test]
    fn whole_units_lose_their_suffix() {
        assert_eq!(format_milli(250), "250m");
        assert_eq!(format_milli(3000), "3");
    }

    #[test]
    fn quantities_read_as_kubernetes_reads_them() {
        assert_eq!(milli("100m"), Some(100));
        assert_eq!(milli("250000000n"), Some(250));
        assert_eq!(milli("1500u"), Some(2));
        assert_eq!(milli("2"), Some(2000));
        assert_eq!(milli("0.5"), Some(500));
        assert_eq!(milli("64Mi"), Some(64 * 1024 * 1024 * 1000));
        assert_eq!(milli("1G"), Some(1_000_000_000_000));
        assert_eq!(milli("2e3"), Some(2_000_000));
        assert_eq!(milli("12x"), None);
    }
}
