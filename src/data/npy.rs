//! NumPy's `.npy` files: an array written by `np.save`, read as `f32` values and a
//! shape — how `nabla predict` takes inputs already prepared as the network takes
//! them (of a model imported from PyTorch, say).
//!
//! The format: the magic `\x93NUMPY`, a version, a header length, a Python dict
//! literal (`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 784), }`), then the
//! values in C order.

use std::path::Path;

use crate::error::{Error, Result};

/// The array in `path`: its shape and its values as `f32` (from float32, float64,
/// uint8 or int64 arrays in C order), or what about the file is not such an array.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes).map_err(|why| Error::format(path, why))
}

/// [`read_npy`] on the file's bytes.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let rest = bytes
        .strip_prefix(b"\x93NUMPY")
        .ok_or("not a .npy file (it does not start with \\x93NUMPY)")?;
    let (header_len, rest) = match rest {
        [1, _, a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]) as usize, rest),
        [2 | 3, _, a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, rest),
        _ => return Err("an unknown .npy version, or the file ends in its preamble".into()),
    };
    if rest.len() < header_len {
        return Err("the file ends inside its header".into());
    }
    let (header, data) = rest.split_at(header_len);
    let header = String::from_utf8_lossy(header);
    let value_of = |key: &str| -> std::result::Result<&str, String> {
        let start = header
            .find(&format!("'{key}':"))
            .ok_or_else(|| format!("the header has no '{key}': {header}"))?
            + key.len()
            + 3;
        Ok(header[start..].trim_start())
    };
    if value_of("fortran_order")?.starts_with("True") {
        return Err("the array is in Fortran order; save it with np.ascontiguousarray".into());
    }
    let descr = value_of("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| format!("cannot read the element type in {header}"))?;
    let shape_text = value_of("shape")?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| format!("cannot read the shape in {header}"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("the shape ({shape_text}) is not sizes"))
        })
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("the shape ({shape_text}) is too large"))?;
    let (width, convert): (usize, fn(&[u8]) -> f32) = match descr {
        "<f4" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        "<f8" => (8, |b| {
            f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32
        }),
        "|u1" => (1, |b| b[0] as f32),
        "<i8" => (8, |b| {
            i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32
        }),
        other => {
            return Err(format!(
                "the array holds `{other}`; nabla reads float32, float64, uint8 and int64 arrays"
            ));
        }
    };
    if data.len() != count * width {
        return Err(format!(
            "a {descr} array of shape ({shape_text}) needs {} bytes of values, the file holds {}",
            count * width,
            data.len()
        ));
    }
    Ok((shape, data.chunks_exact(width).map(convert).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `np.save` writes for `np.array([[1.5, -2], [0, 3]], np.float32)`.
    fn saved(descr: &str, shape: &str, values: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(values);
        bytes
    }

    #[test]
    fn arrays_of_each_element_type_read_as_floats() {
        let floats: Vec<u8> = [1.5f32, -2.0, 0.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy(&saved("<f4", "(2, 2)", &floats)),
            Ok((vec![2, 2], vec![1.5, -2.0, 0.0, 3.0]))
        );
        assert_eq!(
            parse_npy(&saved("|u1", "(3,)", &[0, 7, 255])),
            Ok((vec![3], vec![0.0, 7.0, 255.0]))
        );
        let doubles: Vec<u8> = [0.25f64].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            parse_npy(&saved("<f8", "(1, 1)", &doubles)),
            Ok((vec![1, 1], vec![0.25]))
        );
    }

    #[test]
    fn what_is_not_such_an_array_is_an_error_saying_why() {
        let short = saved("<f4", "(2, 2)", &[0; 12]);
        assert!(parse_npy(&short).unwrap_err().contains("needs 16 bytes"));
        assert!(
            parse_npy(&saved(">f4", "(1,)", &[0; 4]))
                .unwrap_err()
                .contains("`>f4`")
        );
        assert!(
            parse_npy(b"PK\x03\x04")
                .unwrap_err()
                .contains("not a .npy file")
        );
        let mut fortran = saved("<f4", "(1,)", &[0; 4]);
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(parse_npy(&fortran).unwrap_err().contains("Fortran"));
    }
}
