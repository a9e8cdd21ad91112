//! The protocol-buffer wire format, written and read by hand: the few lines two of
//! nabla's file formats need (TensorBoard's event records and ONNX models), instead of
//! a code generator and its build step.
//!
//! A message is a sequence of fields, each a key — `field_number << 3 | wire_type` as
//! a varint — followed by its value: a varint (integers), 8 or 4 little-endian bytes
//! (doubles, floats), or a varint length and that many bytes (strings, nested
//! messages, packed arrays).

/// The wire types this module writes and reads.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

/// A message being written, its fields appended in the order they are given.
///
/// ```
/// use nabla::protobuf::Message;
/// let mut point = Message::new();
/// point.int(1, 150).string(2, "hi");
/// // key 0x08 (field 1, varint), 150 = 0x96 0x01; key 0x12 (field 2, bytes), length 2
/// assert_eq!(point.into_bytes(), [0x08, 0x96, 0x01, 0x12, 2, b'h', b'i']);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Message(Vec<u8>);

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Message(Vec::new())
    }

    /// An integer field (`int32`, `int64`, `uint64`, `bool`, an enum): negative
    /// numbers are written as their 64-bit two's complement, as protobuf does.
    pub fn int(&mut self, field: u32, value: i64) -> &mut Self {
        self.key(field, VARINT);
        varint(&mut self.0, value as u64);
        self
    }

    /// A `float` field.
    pub fn f32(&mut self, field: u32, value: f32) -> &mut Self {
        self.key(field, FIXED32);
        self.0.extend(value.to_le_bytes());
        self
    }

    /// A `double` field.
    pub fn f64(&mut self, field: u32, value: f64) -> &mut Self {
        self.key(field, FIXED64);
        self.0.extend(value.to_le_bytes());
        self
    }

    /// A `bytes` field.
    pub fn bytes(&mut self, field: u32, bytes: &[u8]) -> &mut Self {
        self.key(field, LENGTH_DELIMITED);
        varint(&mut self.0, bytes.len() as u64);
        self.0.extend(bytes);
        self
    }

    /// A `string` field.
    pub fn string(&mut self, field: u32, text: &str) -> &mut Self {
        self.bytes(field, text.as_bytes())
    }

    /// A nested message.
    pub fn message(&mut self, field: u32, message: &Message) -> &mut Self {
        self.bytes(field, &message.0)
    }

    /// A repeated `double` field, packed (one length, then the values).
    pub fn packed_f64(&mut self, field: u32, values: &[f64]) -> &mut Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &bytes)
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The encoded bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire_type));
    }
}

/// Appends `value` in groups of seven bits, lowest first, the high bit of each byte
/// saying that another follows.
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One field's value as it is on the wire; what it means depends on the schema.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// An integer (of any protobuf integer type, or a bool or an enum).
    Varint(u64),
    /// Eight bytes: a `double` (or a fixed 64-bit integer).
    Fixed64(u64),
    /// A string, bytes, a nested message or a packed array.
    Bytes(&'a [u8]),
    /// Four bytes: a `float` (or a fixed 32-bit integer).
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// The value as an integer, or why it is not one.
    pub fn int(self) -> Result<i64, String> {
        match self {
            Value::Varint(v) => Ok(v as i64),
            other => Err(format!("expected an integer, found {}", other.kind())),
        }
    }

    /// The value as a `float`.
    pub fn f32(self) -> Result<f32, String> {
        match self {
            Value::Fixed32(bits) => Ok(f32::from_bits(bits)),
            other => Err(format!("expected a float, found {}", other.kind())),
        }
    }

    /// The value as bytes (a string, a nested message, a packed array).
    pub fn bytes(self) -> Result<&'a [u8], String> {
        match self {
            Value::Bytes(bytes) => Ok(bytes),
            other => Err(format!("expected bytes, found {}", other.kind())),
        }
    }

    /// The value as UTF-8 text.
    pub fn string(self) -> Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a string is not valid UTF-8".to_string())
    }

    /// A repeated integer field's values in this occurrence: one varint, or a packed run.
    pub fn ints(self) -> Result<Vec<i64>, String> {
        match self {
            Value::Varint(v) => Ok(vec![v as i64]),
            Value::Bytes(mut bytes) => {
                let mut values = Vec::new();
                while !bytes.is_empty() {
                    values.push(read_varint(&mut bytes)? as i64);
                }
                Ok(values)
            }
            other => Err(format!("expected integers, found {}", other.kind())),
        }
    }

    /// A repeated `float` field's values in this occurrence: one, or a packed run.
    pub fn f32s(self) -> Result<Vec<f32>, String> {
        match self {
            Value::Fixed32(bits) => Ok(vec![f32::from_bits(bits)]),
            Value::Bytes(bytes) if bytes.len() % 4 == 0 => Ok(bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            other => Err(format!("expected floats, found {}", other.kind())),
        }
    }

    /// A repeated `double` field's values in this occurrence: one, or a packed run.
    pub fn f64s(self) -> Result<Vec<f64>, String> {
        match self {
            Value::Fixed64(bits) => Ok(vec![f64::from_bits(bits)]),
            Value::Bytes(bytes) if bytes.len() % 8 == 0 => Ok(bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()),
            other => Err(format!("expected doubles, found {}", other.kind())),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Value::Varint(_) => "an integer",
            Value::Fixed64(_) => "an 8-byte value",
            Value::Bytes(_) => "a length-delimited value",
            Value::Fixed32(_) => "a 4-byte value",
        }
    }
}

/// The fields of an encoded message, in order: `(field number, value)`, or why the
/// bytes are not a message (cut short, an unknown wire type).
///
/// ```
/// use nabla::protobuf::{Value, fields};
/// let fields = fields(&[0x08, 0x96, 0x01, 0x12, 2, b'h', b'i']).unwrap();
/// assert_eq!(fields, [(1, Value::Varint(150)), (2, Value::Bytes(b"hi"))]);
/// ```
pub fn fields(mut bytes: &[u8]) -> Result<Vec<(u32, Value<'_>)>, String> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes)?;
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|&f| f > 0)
            .ok_or_else(|| format!("field number {} is out of range", key >> 3))?;
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(read_varint(&mut bytes)?),
            FIXED64 => Value::Fixed64(u64::from_le_bytes(take(&mut bytes, 8)?.try_into().unwrap())),
            LENGTH_DELIMITED => {
                let length = read_varint(&mut bytes)?;
                let length = usize::try_from(length)
                    .ok()
                    .filter(|&l| l <= bytes.len())
                    .ok_or_else(|| {
                        format!(
                            "field {field} says it holds {length} bytes, but only {} remain",
                            bytes.len()
                        )
                    })?;
                Value::Bytes(take(&mut bytes, length)?)
            }
            FIXED32 => Value::Fixed32(u32::from_le_bytes(take(&mut bytes, 4)?.try_into().unwrap())),
            other => return Err(format!("field {field} has the unknown wire type {other}")),
        };
        fields.push((field, value));
    }
    Ok(fields)
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("the data ends inside a number")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a number runs over ten bytes".into())
}

fn take<'a>(bytes: &mut &'a [u8], count: usize) -> Result<&'a [u8], String> {
    if bytes.len() < count {
        return Err(format!(
            "the data ends inside a value: {count} bytes needed, {} left",
            bytes.len()
        ));
    }
    let (head, rest) = bytes.split_at(count);
    *bytes = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        varint(&mut out, 300); // 300 = 0b10_0101100 → 0xAC 0x02
        assert_eq!(out, [0xAC, 0x02]);
    }

    #[test]
    fn negative_integers_take_ten_bytes_and_read_back() {
        let mut message = Message::new();
        message.int(3, -1);
        let bytes = message.into_bytes();
        assert_eq!(bytes.len(), 1 + 10);
        assert_eq!(fields(&bytes).unwrap()[0].1.int(), Ok(-1));
    }

    #[test]
    fn every_written_field_reads_back() {
        let mut inner = Message::new();
        inner.string(1, "weight");
        let mut message = Message::new();
        message
            .int(1, 7)
            .f32(2, 0.5)
            .f64(3, -2.25)
            .message(4, &inner)
            .packed_f64(5, &[1.0, 2.0]);
        let bytes = message.into_bytes();
        let read = fields(&bytes).unwrap();
        assert_eq!(read[0], (1, Value::Varint(7)));
        assert_eq!(read[1].1.f32(), Ok(0.5));
        assert_eq!(read[2], (3, Value::Fixed64((-2.25f64).to_bits())));
        let inner = fields(read[3].1.bytes().unwrap()).unwrap();
        assert_eq!(inner[0].1.string().unwrap(), "weight");
        assert_eq!(read[4].1.bytes().unwrap().len(), 16);
    }

    #[test]
    fn packed_and_single_repeated_values_read_alike() {
        assert_eq!(Value::Varint(5).ints(), Ok(vec![5]));
        assert_eq!(Value::Bytes(&[1, 0xAC, 0x02]).ints(), Ok(vec![1, 300]));
        let floats: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        assert_eq!(Value::Bytes(&floats).f32s(), Ok(vec![1.5, -2.0]));
    }

    #[test]
    fn broken_messages_are_errors_not_panics() {
        // a length past the end, a number cut short, wire type 7, field number 0
        for bytes in [&[0x12, 5, b'a'][..], &[0x08, 0x80], &[0x0F], &[0x00, 0x01]] {
            assert!(fields(bytes).is_err(), "{bytes:?}");
        }
    }
}
