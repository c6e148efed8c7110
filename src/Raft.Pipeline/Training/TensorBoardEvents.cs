using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Raft.Model;

namespace Raft.Pipeline.Training;

/// <summary>
/// TensorBoard's event files (<c>--report-to tensorboard</c>): TFRecord framing around <c>tensorflow.Event</c> protocol
/// buffers, written without TensorFlow or a protobuf library. A record is the data's length (uint64, little-endian), the
/// masked CRC-32C of those 8 bytes (uint32), the data, and the masked CRC-32C of the data; a mask is
/// <c>((crc &gt;&gt; 15) | (crc &lt;&lt; 17)) + 0xa282ead8</c>. The file starts with an Event holding
/// <c>file_version = "brain.Event:2"</c>; each training step is one Event (wall_time, step) whose Summary holds one
/// <c>simple_value</c> per number of that step's metrics.jsonl line, tagged <c>train/KEY</c> (the line's key).
/// </summary>
public static class TensorBoardEvents
{
    /// <summary>The file's name in the run directory, beside metrics.jsonl (TensorBoard reads every file whose name holds "tfevents").</summary>
    public const string FileName = "events.out.tfevents.raft";

    /// <summary>The version string of the first event: the format TensorBoard reads.</summary>
    public const string FileVersion = "brain.Event:2";

    private static readonly uint[] Table = MakeTable();

    private static uint[] MakeTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;   // Castagnoli, reflected
            table[i] = c;
        }
        return table;
    }

    /// <summary>CRC-32C (Castagnoli) of <paramref name="data"/>; "123456789" gives 0xE3069283.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }

    /// <summary>TFRecord's masked CRC: rotated right by 15 bits plus 0xa282ead8 (so that a CRC of CRCs is not trivially zero).</summary>
    public static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return unchecked(((crc >> 15) | (crc << 17)) + 0xA282EAD8u);
    }

    /// <summary>One TFRecord: length, masked CRC of the length, data, masked CRC of the data.</summary>
    public static byte[] Record(ReadOnlySpan<byte> data)
    {
        var record = new byte[8 + 4 + data.Length + 4];
        BinaryPrimitives.WriteUInt64LittleEndian(record, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(8), MaskedCrc32C(record.AsSpan(0, 8)));
        data.CopyTo(record.AsSpan(12));
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(12 + data.Length), MaskedCrc32C(data));
        return record;
    }

    /// <summary>The Event that opens a file: wall_time (field 1, double), file_version (field 3, string).</summary>
    public static byte[] FileVersionEvent(double wallTime)
    {
        var e = new MemoryStream();
        Fixed64(e, 1, wallTime);
        Bytes(e, 3, Encoding.UTF8.GetBytes(FileVersion));
        return e.ToArray();
    }

    /// <summary>
    /// An Event of scalars: wall_time (1), step (2, int64), summary (5): a Summary whose repeated value (1) is each
    /// Value{tag (1, string), simple_value (2, float)}.
    /// </summary>
    public static byte[] ScalarsEvent(double wallTime, long step, IEnumerable<(string Tag, float Value)> scalars)
    {
        var summary = new MemoryStream();
        foreach (var (tag, value) in scalars)
        {
            var v = new MemoryStream();
            Bytes(v, 1, Encoding.UTF8.GetBytes(tag));
            Fixed32(v, 2, value);
            Bytes(summary, 1, v.ToArray());
        }
        var e = new MemoryStream();
        Fixed64(e, 1, wallTime);
        Varint(e, 2, unchecked((ulong)step));
        Bytes(e, 5, summary.ToArray());
        return e.ToArray();
    }

    /// <summary>
    /// The scalars of a metrics.jsonl line: every number but <c>step</c> as <c>train/KEY</c> (a NaN or infinity, which the
    /// line spells as a string, too); nulls and booleans are left out.
    /// </summary>
    public static List<(string Tag, float Value)> Scalars(JsonObject line)
    {
        var list = new List<(string, float)>();
        foreach (var (key, node) in line)
        {
            if (key == "step" || node is not JsonValue v) continue;
            double x;
            if (v.GetValueKind() == JsonValueKind.Number) x = v.GetValue<double>();
            else if (v.GetValueKind() == JsonValueKind.String && double.TryParse(v.GetValue<string>(), NumberStyles.Float, CultureInfo.InvariantCulture, out double named) && !double.IsFinite(named)) x = named;
            else continue;
            list.Add(("train/" + key, (float)x));
        }
        return list;
    }

    private static void Tag(Stream s, int field, int wireType) => WriteVarint(s, (ulong)((field << 3) | wireType));

    private static void WriteVarint(Stream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }

    private static void Varint(Stream s, int field, ulong v) { Tag(s, field, 0); WriteVarint(s, v); }

    private static void Fixed64(Stream s, int field, double v)
    {
        Tag(s, field, 1);
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(b, v);
        s.Write(b);
    }

    private static void Fixed32(Stream s, int field, float v)
    {
        Tag(s, field, 5);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, v);
        s.Write(b);
    }

    private static void Bytes(Stream s, int field, byte[] data)
    {
        Tag(s, field, 2);
        WriteVarint(s, (ulong)data.Length);
        s.Write(data);
    }

    /// <summary>
    /// The records of an event file that frame and check (length and data CRCs), in order, each with its Event's step
    /// (0 when it has none); reading stops at the first record that does not (a write cut short).
    /// </summary>
    internal static List<(byte[] Record, long Step)> ReadRecords(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var records = new List<(byte[], long)>();
        int at = 0;
        while (at + 12 <= bytes.Length)
        {
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)) != MaskedCrc32C(bytes.AsSpan(at, 8))) break;
            if (length > (ulong)(bytes.Length - at - 16)) break;
            var data = bytes.AsSpan(at + 12, (int)length);
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)length)) != MaskedCrc32C(data)) break;
            long step;
            try { step = StepOf(data); }
            catch (Exception e) when (e is InvalidDataException or OverflowException or ArgumentOutOfRangeException) { break; }   // not an Event this writer wrote
            records.Add((bytes.AsSpan(at, 16 + (int)length).ToArray(), step));
            at += 16 + (int)length;
        }
        return records;
    }

    /// <summary>An Event's step field (2), or 0 (the first event has none).</summary>
    private static long StepOf(ReadOnlySpan<byte> e)
    {
        int i = 0;
        long step = 0;
        while (i < e.Length)
        {
            ulong tag = ReadVarint(e, ref i);
            switch ((int)(tag & 7))
            {
                case 0: ulong v = ReadVarint(e, ref i); if (tag >> 3 == 2) step = unchecked((long)v); break;
                case 1: i += 8; break;
                case 2: int n = checked((int)ReadVarint(e, ref i)); i += n; break;   // not i += Read…(ref i): that adds to the old i
                case 5: i += 4; break;
                default: throw new InvalidDataException($"wire type {tag & 7}");
            }
        }
        return step;
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> e, ref int i)
    {
        ulong v = 0;
        for (int shift = 0; ; shift += 7)
        {
            if (i >= e.Length || shift > 63) throw new InvalidDataException("a varint runs past the event");
            byte b = e[i++];
            v |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return v;
        }
    }
}

/// <summary>
/// The run's TensorBoard event file (rank 0): one record per step, appended and flushed as metrics.jsonl is. A fresh run
/// removes an old file; a resumed run keeps the records up to its checkpoint's step (as metrics.jsonl is cut) and appends.
/// </summary>
internal sealed class TensorBoardLog
{
    private readonly string _path;

    private TensorBoardLog(string path) => _path = path;

    /// <summary>Opens the log in <paramref name="runDirectory"/>: with <paramref name="resumeStep"/>, after cutting the file to that step; else anew.</summary>
    public static TensorBoardLog Open(string runDirectory, int? resumeStep)
    {
        var log = new TensorBoardLog(Path.Combine(runDirectory, TensorBoardEvents.FileName));
        var keep = new MemoryStream();
        if (resumeStep is int last && File.Exists(log._path))
            foreach (var (record, step) in TensorBoardEvents.ReadRecords(log._path))
                if (step <= last) keep.Write(record);
        if (keep.Length == 0) keep.Write(TensorBoardEvents.Record(TensorBoardEvents.FileVersionEvent(Now())));
        var bytes = keep.ToArray();
        AtomicFile.Write(log._path, s => s.Write(bytes));
        return log;
    }

    /// <summary>Removes the event file of an earlier run (a fresh run, or a resume without <c>--report-to tensorboard</c>, keeps none stale).</summary>
    public static void Remove(string runDirectory, int? resumeStep)
    {
        string path = Path.Combine(runDirectory, TensorBoardEvents.FileName);
        if (!File.Exists(path)) return;
        if (resumeStep is null) { File.Delete(path); return; }
        var keep = new MemoryStream();
        foreach (var (record, step) in TensorBoardEvents.ReadRecords(path))
            if (step <= resumeStep) keep.Write(record);
        var bytes = keep.ToArray();
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Appends one step: the scalars of its metrics.jsonl line.</summary>
    public void Append(int step, JsonObject line)
    {
        var record = TensorBoardEvents.Record(TensorBoardEvents.ScalarsEvent(Now(), step, TensorBoardEvents.Scalars(line)));
        using var f = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read);
        f.Write(record);
        f.Flush(flushToDisk: false);
    }

    private static double Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
}
