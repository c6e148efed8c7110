using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Raft.Pipeline.Training;

namespace Raft.Pipeline.Tests;

/// <summary>
/// <c>report_to = "tensorboard"</c> (#20.6): the event file beside metrics.jsonl, read back by a parser written here from
/// the format's description (TFRecord framing, a bitwise CRC-32C, protobuf wire format, the Event / Summary / Value
/// field numbers), not by the writer's code.
/// </summary>
public sealed class TensorBoardEventsTests
{
    /// <summary>CRC-32C bit by bit (polynomial 0x1EDC6F41, reflected 0x82F63B78): no table, as a second implementation.</summary>
    private static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }

    private static uint Masked(ReadOnlySpan<byte> data)
    {
        uint c = Crc32C(data);
        return unchecked(((c >> 15) | (c << 17)) + 0xa282ead8u);
    }

    /// <summary>One decoded Event: what TensorBoard reads of it.</summary>
    private sealed record Event(double WallTime, long Step, string? FileVersion, Dictionary<string, float> Scalars);

    /// <summary>Reads every record, checking both masked CRCs; a bad record fails the test.</summary>
    private static List<Event> ReadEvents(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var events = new List<Event>();
        int at = 0;
        while (at < bytes.Length)
        {
            Assert.True(bytes.Length - at >= 16, $"a record cut short at byte {at}");
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at, 8));
            Assert.Equal(Masked(bytes.AsSpan(at, 8)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8, 4)));
            int len = checked((int)n);
            var data = bytes.AsSpan(at + 12, len);
            Assert.Equal(Masked(data), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + len, 4)));
            events.Add(DecodeEvent(data.ToArray()));
            at += 16 + len;
        }
        return events;
    }

    /// <summary>The protobuf wire format: (field, wire type, value) triples; a length-delimited value as its bytes.</summary>
    private static List<(int Field, int Wire, ulong Number, byte[]? Bytes)> Fields(byte[] message)
    {
        var list = new List<(int, int, ulong, byte[]?)>();
        int i = 0;
        ulong Varint()
        {
            ulong v = 0;
            int shift = 0;
            while (true)
            {
                byte b = message[i++];
                v |= (ulong)(b & 0x7f) << shift;
                if ((b & 0x80) == 0) return v;
                shift += 7;
            }
        }
        while (i < message.Length)
        {
            ulong key = Varint();
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: list.Add((field, 0, Varint(), null)); break;
                case 1: list.Add((field, 1, BinaryPrimitives.ReadUInt64LittleEndian(message.AsSpan(i, 8)), null)); i += 8; break;
                case 2: int n = (int)Varint(); list.Add((field, 2, 0, message[i..(i + n)])); i += n; break;
                case 5: list.Add((field, 5, BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(i, 4)), null)); i += 4; break;
                default: Assert.Fail($"wire type {wire}"); break;
            }
        }
        return list;
    }

    // tensorflow/core/util/event.proto: Event{double wall_time = 1; int64 step = 2; oneof {string file_version = 3; Summary summary = 5}}
    // tensorflow/core/framework/summary.proto: Summary{repeated Value value = 1}; Value{string tag = 1; float simple_value = 2}
    private static Event DecodeEvent(byte[] data)
    {
        double wall = 0; long step = 0; string? version = null;
        var scalars = new Dictionary<string, float>();
        foreach (var (field, wire, number, bytes) in Fields(data))
        {
            if (field == 1) { Assert.Equal(1, wire); wall = BitConverter.UInt64BitsToDouble(number); }
            else if (field == 2) { Assert.Equal(0, wire); step = (long)number; }
            else if (field == 3) { Assert.Equal(2, wire); version = Encoding.UTF8.GetString(bytes!); }
            else if (field == 5)
            {
                Assert.Equal(2, wire);
                foreach (var value in Fields(bytes!))
                {
                    Assert.Equal((1, 2), (value.Field, value.Wire));
                    string? tag = null; float? simple = null;
                    foreach (var f in Fields(value.Bytes!))
                    {
                        if (f.Field == 1) tag = Encoding.UTF8.GetString(f.Bytes!);
                        else if (f.Field == 2) { Assert.Equal(5, f.Wire); simple = BitConverter.UInt32BitsToSingle((uint)f.Number); }
                    }
                    scalars.Add(tag!, simple!.Value);
                }
            }
        }
        return new Event(wall, step, version, scalars);
    }

    [Fact]
    public void Crc32c_is_the_castagnoli_crc_and_the_mask_is_tfrecords()
    {
        var check = "123456789"u8.ToArray();
        Assert.Equal(0xE3069283u, Crc32C(check));   // the CRC-32C check value (RFC 3720 B.4's polynomial)
        Assert.Equal(0xE3069283u, TensorBoardEvents.Crc32C(check));
        var random = new Random(3);
        for (int n = 0; n < 300; n += 7)
        {
            var data = new byte[n];
            random.NextBytes(data);
            Assert.Equal(Crc32C(data), TensorBoardEvents.Crc32C(data));
            Assert.Equal(Masked(data), TensorBoardEvents.MaskedCrc32C(data));
        }
    }

    [Fact]
    public void Scalars_take_every_number_of_the_metrics_line_but_the_step()
    {
        var line = JsonNode.Parse("{\"step\": 3, \"loss\": 1.5, \"kd_loss\": null, \"grad_norm\": \"NaN\", \"tokens\": 12, \"skipped\": true}")!.AsObject();
        var scalars = TensorBoardEvents.Scalars(line);
        Assert.Equal(["train/loss", "train/grad_norm", "train/tokens"], scalars.Select(s => s.Tag));
        Assert.Equal(1.5f, scalars[0].Value);
        Assert.True(float.IsNaN(scalars[1].Value));
    }

    private static void AssertMatchesMetrics(string run, List<Event> events)
    {
        var lines = File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(TensorBoardEvents.FileVersion, events[0].FileVersion);
        Assert.Equal(lines.Count + 1, events.Count);
        for (int i = 0; i < lines.Count; i++)
        {
            var e = events[i + 1];
            Assert.Null(e.FileVersion);
            Assert.Equal(lines[i]["step"]!.GetValue<long>(), e.Step);
            foreach (var key in new[] { "loss", "sft_loss", "w_sft", "grad_norm", "tokens", "tokens_per_s", "lr", "train_s", "elapsed_s" })
                Assert.Equal((float)lines[i][key]!.GetValue<double>(), e.Scalars[$"train/{key}"]);
            Assert.False(e.Scalars.ContainsKey("train/kd_loss"));   // null for SFT: not written
            Assert.False(e.Scalars.ContainsKey("train/step"));
        }
        double now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        Assert.All(events, e => Assert.InRange(e.WallTime, now - 600, now + 1));
        for (int i = 1; i < events.Count; i++) Assert.True(events[i].WallTime >= events[i - 1].WallTime);
    }

    [Fact]
    public void A_run_writes_one_event_per_step_and_a_resume_keeps_the_steps_up_to_its_checkpoint()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        var options = TinyModels.Sft(4) with { ReportTo = "tensorboard", CheckpointEvery = 2 };
        TinyModels.Trainer(TinyModels.Model(seed: 2), options).Run(run);
        string file = Path.Combine(run, TensorBoardEvents.FileName);
        var first = ReadEvents(file);
        AssertMatchesMetrics(run, first);
        Assert.Equal([0L, 1, 2, 3, 4], first.Select(e => e.Step));

        // as if stopped after step 2, with a record cut short at the end of the file: the resume keeps steps 1-2 as they were
        Directory.Delete(Path.Combine(run, Trainer.FinalDir), recursive: true);
        using (var f = new FileStream(file, FileMode.Append)) f.Write(new byte[] { 9, 0, 0, 0, 0, 0, 0, 0, 1, 2 });
        TinyModels.Trainer(TinyModels.Model(seed: 2), options).Run(run, resume: true);
        var resumed = ReadEvents(file);
        AssertMatchesMetrics(run, resumed);
        Assert.Equal([0L, 1, 2, 3, 4], resumed.Select(e => e.Step));
        Assert.Equal(first.Take(3).Select(e => e.WallTime), resumed.Take(3).Select(e => e.WallTime));
        Assert.Equal(first[4].Scalars["train/loss"], resumed[4].Scalars["train/loss"]);   // resumed bit-exactly: the same losses
    }

    [Fact]
    public void Without_report_to_no_event_file_is_written_and_an_old_one_goes()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        TinyModels.Trainer(TinyModels.Model(seed: 2), TinyModels.Sft(2) with { ReportTo = "tensorboard" }).Run(run);
        Assert.True(File.Exists(Path.Combine(run, TensorBoardEvents.FileName)));
        TinyModels.Trainer(TinyModels.Model(seed: 2), TinyModels.Sft(2) with { ReportTo = "none" }).Run(run);
        Assert.False(File.Exists(Path.Combine(run, TensorBoardEvents.FileName)));
        Assert.Contains(TensorBoardEvents.FileName, Trainer.RunEntries);
    }

    [Fact]
    public void Report_to_refuses_other_values_by_key()
    {
        var e = Assert.Throws<ArgumentException>(() => (TinyModels.Sft(2) with { ReportTo = "wandb" }).Validate());
        Assert.Equal("report_to", e.ParamName);
        Assert.Contains("\"wandb\"", e.Message);
        Assert.Contains("tensorboard or none", e.Message);
        (TinyModels.Sft(2) with { ReportTo = "none" }).Validate();
        (TinyModels.Sft(2) with { ReportTo = "tensorboard" }).Validate();
    }

    /// <summary>Runs only where python3 can import tensorboard (not on this project's machines, which reach no Python registry).</summary>
    public sealed class TensorBoardFactAttribute : FactAttribute
    {
        public TensorBoardFactAttribute()
        {
            if (!Available.Value) Skip = "python3 cannot import tensorboard (pip install tensorboard) — the event file is checked by the parser above instead";
        }

        public static readonly Lazy<bool> Available = new(() =>
        {
            try
            {
                using var p = Process.Start(new ProcessStartInfo("python3", "-c \"import tensorboard\"") { RedirectStandardError = true, RedirectStandardOutput = true })!;
                p.WaitForExit(120_000);
                return p.HasExited && p.ExitCode == 0;
            }
            catch (System.ComponentModel.Win32Exception) { return false; }
        });
    }

    [TensorBoardFact]
    public void Tensorboards_own_reader_sees_the_same_scalars()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        TinyModels.Trainer(TinyModels.Model(seed: 2), TinyModels.Sft(3) with { ReportTo = "tensorboard" }).Run(run);
        string script = dir.Write("read.py", string.Join("\n",
            "import sys",
            "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator",
            "ea = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0})",
            "ea.Reload()",
            "for tag in sorted(ea.Tags()['scalars']):",
            "    for e in ea.Scalars(tag):",
            "        print(tag, e.step, repr(float(e.value)))",
            ""));
        var info = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(script);
        info.ArgumentList.Add(run);
        using var p = Process.Start(info)!;
        string output = p.StandardOutput.ReadToEnd(), errors = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, errors);
        var seen = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' '))
            .ToDictionary(f => (f[0], long.Parse(f[1], CultureInfo.InvariantCulture)), f => f[2] == "nan" ? double.NaN : double.Parse(f[2], CultureInfo.InvariantCulture));
        var lines = File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(3, lines.Count);
        foreach (var line in lines)
            foreach (var key in new[] { "loss", "grad_norm", "lr", "tokens" })
                Assert.Equal((double)(float)line[key]!.GetValue<double>(), seen[($"train/{key}", line["step"]!.GetValue<long>())]);
    }
}
