using Raft.Pipeline.Data;

namespace Raft.Pipeline.Tests;

public sealed class RowSliceTests
{
    // Expected values worked by hand from Hugging Face datasets' _rel_to_abs_instr: percentages are
    // int(round(p · n / 100)) (Python's round: halves to even), pct1_dropremainder p · trunc(n / 100), negative ends
    // count from the end (max(n + end, 0)), both ends clamped to n.
    public static TheoryData<string, int, int, int> Slices => new()
    {
        { "[:]", 10, 0, 10 },
        { "[2:5]", 10, 2, 5 },
        { "[:3]", 10, 0, 3 },
        { "[7:]", 10, 7, 10 },
        { "[-3:]", 10, 7, 10 },
        { "[:-3]", 10, 0, 7 },
        { "[-20:]", 10, 0, 10 },
        { "[:-20]", 10, 0, 0 },
        { "[5:2]", 10, 5, 5 },
        { "[12:]", 10, 10, 10 },
        { "[:100]", 10, 0, 10 },
        { "[0:0]", 10, 0, 0 },
        { "[:3]", 0, 0, 0 },
        { "[:10%]", 15, 0, 2 },            // round(1.5) = 2
        { "[:10%]", 25, 0, 2 },            // round(2.5) = 2 (half to even, not 3)
        { "[:10%]", 35, 0, 4 },            // round(3.5) = 4
        { "[25%:75%]", 10, 2, 8 },         // round(2.5) = 2, round(7.5) = 8
        { "[-10%:]", 15, 13, 15 },         // round(-1.5) = -2 → 15 - 2
        { "[:-10%]", 15, 0, 13 },
        { "[:100%]", 7, 0, 7 },
        { "[0%:]", 7, 0, 7 },
        { "[-100%:]", 7, 0, 7 },
        { "[50%:]", 1, 0, 1 },             // round(0.5) = 0
        { "[:10%](closest)", 250, 0, 25 },
        { "[:10%](pct1_dropremainder)", 250, 0, 20 },   // 10 · trunc(2.5)
        { "[33%:66%](pct1_dropremainder)", 199, 33, 66 },
        { " [1:4] ", 10, 1, 4 },
        { "0:100", 250, 0, 100 },          // brackets optional (unbracketed, a shell does not glob it)
        { ":10%", 250, 0, 25 },
        { "-3:", 10, 7, 10 },
        { ":", 10, 0, 10 },
    };

    [Theory]
    [MemberData(nameof(Slices))]
    public void Resolves_as_hugging_face_datasets_does(string text, int count, int start, int end)
    {
        var slice = RowSlice.Parse(text);
        Assert.Equal((start, end), slice.Resolve(count));
        Assert.Equal(text.Trim(), slice.ToString());
    }

    public static TheoryData<string, string> BadSlices => new()
    {
        { "[10:20", "is not a row slice" },
        { "10:20]", "is not a row slice" },
        { "10", "is not a row slice" },
        { "", "is not a row slice" },
        { "[1:2:3]", "is not a row slice" },
        { "[a:b]", "is not a row slice" },
        { "[1.5:]", "is not a row slice" },
        { "[5]", "is not a row slice" },
        { "[:150%]", "percentages must be in [-100, 100]" },
        { "[10:20%]", "same unit" },
        { "[:5](pct1_dropremainder)", "applies to percentages only" },
        { "[:5%](floor)", "rounding \"floor\" is unknown" },
        { "[99999999999:]", "out of range" },
    };

    [Theory]
    [MemberData(nameof(BadSlices))]
    public void Bad_slice_quotes_the_value_and_says_what_is_expected(string text, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => RowSlice.Parse(text));
        Assert.Contains($"\"{text}\"", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Drop_remainder_needs_a_hundred_rows()
    {
        var slice = RowSlice.Parse("[:10%](pct1_dropremainder)");
        Assert.Equal((0, 10), slice.Resolve(100));
        var e = Assert.Throws<ArgumentException>(() => slice.Resolve(99));
        Assert.Equal("rows", e.ParamName);
        Assert.Contains("at least 100 rows", e.Message);
    }

    [Fact]
    public void Options_refuse_a_bad_slice_by_key()
    {
        var e = Assert.Throws<ArgumentException>(() => new Training.TrainOptions { Rows = "[1:" }.Validate());
        Assert.Equal("rows", e.ParamName);
        Assert.Contains("\"[1:\"", e.Message);
        var r = Assert.Throws<ArgumentException>(() => new Refine.RefineOptions { Rows = "[:x%]" }.Validate());
        Assert.Equal("rows", r.ParamName);
        Assert.Equal(RowSlice.Parse("[:5]"), new Training.TrainOptions { Rows = "[:5]" }.RowSelection());
    }

    [Fact]
    public void Jsonl_slice_counts_non_blank_lines_and_leaves_the_others_unparsed()
    {
        using var dir = new TempDir();
        // line 3 is blank, line 5 is malformed but outside the selection
        string path = dir.Write("d.jsonl",
            "{\"prompt\": \"p0\", \"answer\": \"a0\"}\n{\"prompt\": \"p1\", \"answer\": \"a1\"}\n\n{\"prompt\": \"p2\", \"answer\": \"a2\"}\n{not json\n{\"prompt\": \"p4\", \"answer\": \"a4\"}\n");
        var xs = JsonlDataset.Load(path, rows: RowSlice.Parse("[1:3]"));
        Assert.Equal(new[] { "p1", "p2" }, xs.Select(x => x.Prompt));
        Assert.Equal(new[] { 2, 4 }, xs.Select(x => x.Line));
        Assert.Equal(new[] { "p4" }, JsonlDataset.Load(path, rows: RowSlice.Parse("[-1:]")).Select(x => x.Prompt));
        // the malformed record is row 3 (0-based): inside the selection it stops the read, naming its line
        var e = Assert.Throws<DataFormatException>(() => JsonlDataset.Load(path, rows: RowSlice.Parse("[2:]")));
        Assert.Equal(5, e.Line);
        var skipped = JsonlDataset.Read(path, skipBadLines: true, rows: RowSlice.Parse("[50%:]"));
        Assert.Equal(new[] { "p2", "p4" }, skipped.Examples.Select(x => x.Prompt));
        Assert.Equal(1, skipped.SkippedLines);
    }

    [Fact]
    public void A_slice_without_percentages_or_negative_ends_stops_reading_at_its_end()
    {
        using var dir = new TempDir();
        // line 4 holds a byte that is not UTF-8: a slice ending before it never reads it; one that needs the count does
        var bytes = new List<byte>();
        foreach (int i in new[] { 0, 1, 2 }) bytes.AddRange(System.Text.Encoding.UTF8.GetBytes($"{{\"prompt\": \"p{i}\", \"answer\": \"a{i}\"}}\n"));
        bytes.AddRange([(byte)'{', 0xFF, (byte)'}', (byte)'\n']);
        string path = dir.File("cut.jsonl");
        File.WriteAllBytes(path, bytes.ToArray());
        Assert.Equal(new[] { "p0", "p1" }, JsonlDataset.Load(path, rows: RowSlice.Parse("0:2")).Select(x => x.Prompt));
        Assert.Equal(new[] { "p1", "p2" }, JsonlDataset.Load(path, rows: RowSlice.Parse("1:3")).Select(x => x.Prompt));
        var e = Assert.Throws<DataFormatException>(() => JsonlDataset.Load(path, rows: RowSlice.Parse(":50%")));
        Assert.Equal(4, e.Line);
    }
}
