namespace Raft.Teacher;

/// <summary>
/// The check of an ONNX model's protobuf before ONNX Runtime loads it (#19). ONNX Runtime believes a stored tensor's
/// dimensions before comparing them with its data: an int64 initializer announcing 7·10¹⁷ elements over 8 bytes of data
/// kept it busy for minutes instead of failing. This walks the file's structure (model → graphs → nodes → attributes →
/// tensors, subgraphs included) without reading tensor data (it seeks past it, so a 2 GB model costs a few reads) and
/// requires: every length inside the file, no negative dimension nor an overflowing product, every tensor stored in the
/// file holding the elements its dimensions announce (raw data exactly; typed fields at least a byte an element), and
/// subgraphs nested at most <see cref="MaxDepth"/> deep. Tensors in external data are left to ONNX Runtime. A violation
/// raises <see cref="InvalidDataException"/> naming the file, the tensor and the offset.
/// </summary>
internal static class OnnxModelCheck
{
    /// <summary>The deepest nesting of subgraphs (If/Loop/Scan bodies) accepted; real decoders nest one or two.</summary>
    public const int MaxDepth = 64;

    private enum Kind { Model, Graph, Node, Attribute, Tensor, Sparse, Function }

    /// <summary>Throws <see cref="InvalidDataException"/> naming <paramref name="path"/> when the model's structure is not sound.</summary>
    public static void Check(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        new Walker(f, path).Message(Kind.Model, f.Length, 0);
    }

    private sealed class Walker(FileStream f, string path)
    {
        private InvalidDataException Bad(string what) => new($"{path}: cannot load this model, not a valid ONNX protobuf: {what} (offset {f.Position}; truncated or corrupt).");

        private ulong Varint(long end)
        {
            ulong v = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (f.Position >= end) throw Bad("a number runs past the end of its message");
                int b = f.ReadByte();
                if (b < 0) throw Bad("the file ends inside a number");
                v |= (ulong)(b & 0x7f) << shift;
                if ((b & 0x80) == 0) return v;
            }
            throw Bad("a number longer than 10 bytes");
        }

        private long Length(long end)
        {
            ulong n = Varint(end);
            if (n > (ulong)(end - f.Position)) throw Bad($"a field of {n} bytes runs past the end of its message ({end - f.Position} bytes left)");
            return (long)n;
        }

        /// <summary>Walks the fields of one message ending at <paramref name="end"/>; <paramref name="depth"/> counts subgraphs.</summary>
        public void Message(Kind kind, long end, int depth)
        {
            if (kind == Kind.Tensor) { Tensor(end); return; }
            while (f.Position < end)
            {
                ulong tag = Varint(end);
                int field = (int)Math.Min(tag >> 3, int.MaxValue), wire = (int)(tag & 7);
                if (field == 0) throw Bad("field number 0");
                Kind? sub = (kind, field) switch
                {
                    (Kind.Model, 7) => Kind.Graph,
                    (Kind.Model, 25) => Kind.Function,
                    (Kind.Graph, 1) or (Kind.Function, 7) => Kind.Node,
                    (Kind.Graph, 5) or (Kind.Attribute, 5) or (Kind.Attribute, 10) or (Kind.Sparse, 1) or (Kind.Sparse, 2) => Kind.Tensor,
                    (Kind.Graph, 15) or (Kind.Attribute, 22) or (Kind.Attribute, 23) => Kind.Sparse,
                    (Kind.Node, 5) => Kind.Attribute,
                    (Kind.Attribute, 6) or (Kind.Attribute, 11) => Kind.Graph,
                    _ => null,
                };
                if (sub is { } s && wire == 2)
                {
                    long len = Length(end);
                    int d = s == Kind.Graph && kind == Kind.Attribute ? depth + 1 : depth;
                    if (d > MaxDepth) throw Bad($"subgraphs nested deeper than {MaxDepth}");
                    Message(s, f.Position + len, d);
                }
                else Skip(wire, end);
            }
            if (f.Position != end) throw Bad("a message's last field runs past its end");
        }

        private void Skip(int wire, long end)
        {
            long n = wire switch
            {
                0 => -1,
                1 => 8,
                2 => Length(end),
                5 => 4,
                _ => throw Bad($"wire type {wire}"),
            };
            if (n < 0) { Varint(end); return; }
            if (n > end - f.Position) throw Bad($"a field of {n} bytes runs past the end of its message");
            f.Seek(n, SeekOrigin.Current);
        }

        private void Tensor(long end)
        {
            long start = f.Position, count = 1, dataBytes = 0, raw = -1, strings = 0;
            int type = 0;
            bool external = false;
            try
            {
                while (f.Position < end)
                {
                    ulong tag = Varint(end);
                    int field = (int)Math.Min(tag >> 3, int.MaxValue), wire = (int)(tag & 7);
                    if (field == 0) throw Bad("field number 0 in a tensor");
                    switch (field, wire)
                    {
                        case (1, 0): count = checked(count * Dim((long)Varint(end))); break;
                        case (1, 2):
                        {
                            long len = Length(end), e = f.Position + len;
                            while (f.Position < e) count = checked(count * Dim((long)Varint(e)));
                            break;
                        }
                        case (2, 0): type = (int)Varint(end); break;
                        case (9, 2): raw = Length(end); f.Seek(raw, SeekOrigin.Current); break;
                        case (6, 2): strings++; Skip(2, end); break;
                        case (14, 0): external = Varint(end) == 1; break;
                        case (4 or 5 or 7 or 10 or 11, 2): { long n = Length(end); dataBytes += n; f.Seek(n, SeekOrigin.Current); break; }
                        case (4 or 5 or 7 or 10 or 11, _): dataBytes += wire == 5 ? 4 : wire == 1 ? 8 : 1; Skip(wire, end); break;
                        default: Skip(wire, end); break;
                    }
                }
            }
            catch (OverflowException) { throw Bad($"the tensor at offset {start} has dimensions whose product overflows"); }
            if (f.Position != end) throw Bad("a tensor's last field runs past its end");
            if (external || type == 0) return;
            string which = $"the tensor at offset {start}";
            if (type == 8)
            {
                if (count != strings) throw Bad($"{which} announces {count} strings and holds {strings}");
                return;
            }
            if (ElementBits(type) is not { } bits) return; // a type ONNX Runtime names itself
            long? bytes = count <= (long.MaxValue - 7) / bits ? (count * bits + 7) / 8 : null;
            if (bytes is null) throw Bad($"{which} announces {count} elements, more bytes than a file can hold");
            if (raw >= 0 && raw != bytes) throw Bad($"{which} announces {count} elements ({bytes} bytes) and holds {raw} bytes of raw data");
            // typed fields (float_data, int32_data as varints, …) take at least a byte an element, 4-bit types half
            long leastTyped = ElementBits(type) >= 8 ? count : bytes.Value;
            if (raw < 0 && dataBytes < leastTyped)
                throw Bad($"{which} announces {count} elements and holds {dataBytes} bytes of typed data");
        }

        private long Dim(long d) => d >= 0 ? d : throw Bad($"a tensor dimension of {d}");

        // bits an element of each TensorProto.DataType takes in raw data (null: not checked here)
        private static long? ElementBits(int type) => type switch
        {
            1 or 6 or 12 => 32,               // float, int32, uint32
            2 or 3 or 9 => 8,                 // uint8, int8, bool
            4 or 5 or 10 or 16 => 16,         // uint16, int16, float16, bfloat16
            7 or 11 or 13 or 14 => 64,        // int64, double, uint64, complex64
            15 => 128,                        // complex128
            17 or 18 or 19 or 20 => 8,        // float8 variants
            21 or 22 or 23 => 4,              // uint4, int4, float4e2m1
            _ => null,
        };
    }
}
