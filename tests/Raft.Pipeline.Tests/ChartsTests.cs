using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Tests;

public sealed class ChartsTests
{
    private static (byte, byte, byte) Rgb(ScottPlot.Color c) => (c.R, c.G, c.B);

    private static bool Dark((byte R, byte G, byte B) p) => p.R < 90 && p.G < 90 && p.B < 90;

    [Theory]
    [InlineData(960, 600)]
    [InlineData(333, 217)]
    public void A_line_chart_decodes_to_its_size_with_each_series_in_its_colour_and_text(int width, int height)
    {
        var rng = new Random();
        double scale = Math.Pow(10, rng.Next(-3, 5));
        var up = Enumerable.Range(0, 30).Select(i => ((double)i, scale * (i + rng.NextDouble()))).ToArray();
        var down = Enumerable.Range(0, 30).Select(i => ((double)i, scale * (30 - i + rng.NextDouble()))).ToArray();
        var zero = Enumerable.Range(0, 30).Select(i => ((double)i, 0.0)).ToArray(); // must stay visible off the axis
        var panel = new ChartPanel("Loss by step", "step", "loss",
            [new ChartSeries("rising", up), new ChartSeries("falling", down), new ChartSeries("zero", zero), new ChartSeries("empty", [])]);
        using var dir = new TempDir();
        string path = dir.File("chart.png");
        Charts.WriteLineChart(path, panel, "evaluated on a subset", width, height);

        var img = PngDecoder.Decode(File.ReadAllBytes(path));
        Assert.Equal(width, img.Width);
        Assert.Equal(height, img.Height);
        int white = img.Count(p => p is { R: 255, G: 255, B: 255 });
        Assert.InRange(white, 1, width * height * 98 / 100); // not blank
        for (int s = 0; s < 3; s++)
            Assert.True(img.CountNear(Rgb(Charts.Palette[s])) > 30, $"series {s} colour barely present");
        // text (title, note, ticks, labels) is drawn: dark pixels in the title strip and beside the left axis
        Assert.True(img.Count(Dark, 0, 0, width, height / 8) > 40, "no title text");
        Assert.True(img.Count(Dark, 0, 0, width / 8, height) > 40, "no axis text");
    }

    [Fact]
    public void Panels_are_laid_out_in_a_grid_under_a_title()
    {
        var points = Enumerable.Range(1, 40).Select(i => ((double)i, Math.Sin(i / 5.0))).ToArray();
        var panels = Enumerable.Range(0, 5).Select(i => new ChartPanel($"panel {i}", "step", "y", [new ChartSeries("s", points)])).ToList();
        panels.Add(new ChartPanel("nothing here", "step", "y", [new ChartSeries("s", [(1.0, double.NaN)])]));
        var img = PngDecoder.Decode(Charts.RenderPanels("Run", panels, "a note", columns: 2, panelWidth: 400, panelHeight: 300));
        Assert.Equal(800, img.Width);
        const int header = 70; // the title and the note, one line each
        Assert.Equal(3 * 300 + header, img.Height);
        Assert.True(img.Count(Dark, 0, 0, 800, 60) > 40, "no overall title");
        // every panel but the last one draws the line
        var c = Rgb(Charts.Palette[0]);
        for (int i = 0; i < 6; i++)
        {
            int x0 = i % 2 * 400, y0 = header + i / 2 * 300;
            int n = img.Count(p => Math.Abs(p.R - c.Item1) < 24 && Math.Abs(p.G - c.Item2) < 24 && Math.Abs(p.B - c.Item3) < 24, x0, y0, x0 + 400, y0 + 300);
            if (i < 5) Assert.True(n > 30, $"panel {i}: line missing");
            else Assert.True(n < 5, $"panel {i} has no finite point but shows {n} line pixels");
        }
    }

    [Fact]
    public void A_note_wider_than_the_chart_wraps_onto_more_lines_instead_of_being_cut()
    {
        var panels = new[] { new ChartPanel("p", "step", "y", [new ChartSeries("s", [(0.0, 1.0), (1.0, 2.0)])]) };
        string note = string.Join(" ", Enumerable.Repeat("a fairly long note about the eval subset", 6));
        var img = PngDecoder.Decode(Charts.RenderPanels("Run", panels, note, columns: 1, panelWidth: 400, panelHeight: 300));
        int lines = (img.Height - 300 - 8 - 30 - 6) / 26;
        Assert.Equal(img.Height, 300 + 8 + 30 + lines * 26 + 6);
        Assert.InRange(lines, 4, 12);
        // no text runs into the left or right edge: the outermost 6 pixel columns of the header are white
        Assert.Equal(0, img.Count(p => p is not { R: 255, G: 255, B: 255 }, 0, 0, 6, img.Height - 300));
        Assert.Equal(0, img.Count(p => p is not { R: 255, G: 255, B: 255 }, 394, 0, 400, img.Height - 300));
        using var wide = new SkiaSharp.SKFont(SkiaSharp.SKTypeface.Default, 15);
        var wrapped = Charts.Wrap(note + "\nsecond paragraph", wide, 300);
        Assert.All(wrapped, l => Assert.True(wide.MeasureText(l) <= 300, $"'{l}' is wider than 300 px"));
        Assert.Equal(note + " second paragraph", string.Join(" ", wrapped));
        Assert.Equal("second paragraph", wrapped[^1]);
    }

    [Fact]
    public void Fixed_vertical_limits_must_be_finite_and_ordered()
    {
        var series = new ChartSeries("s", [(0.0, 1.0), (1.0, 2.0)]);
        var ok = new ChartPanel("t", "x", "y", [series]) { YLimits = (-2, 102) };
        var img = PngDecoder.Decode(Charts.RenderLineChart(ok));
        Assert.Equal((960, 600), (img.Width, img.Height));
        var e = Assert.Throws<ArgumentException>(() => Charts.RenderLineChart(ok with { YLimits = (5, 5) }));
        Assert.Equal("panel", e.ParamName);
        Assert.Contains("YLimits (5, 5)", e.Message);
        Assert.Throws<ArgumentException>(() => Charts.RenderLineChart(ok with { YLimits = (double.NaN, 1) }));
    }

    [Fact]
    public void Lines_break_at_non_finite_points()
    {
        var segs = Charts.Segments([(0, 1), (1, double.NaN), (2, 2), (3, 3), (double.PositiveInfinity, 3), (5, 5)]).ToList();
        Assert.Equal(3, segs.Count);
        Assert.Equal([(0.0, 1.0)], segs[0]);
        Assert.Equal([(2.0, 2.0), (3.0, 3.0)], segs[1]);
        Assert.Equal([(5.0, 5.0)], segs[2]);
    }

    [Fact]
    public void Sizes_out_of_range_are_refused_by_name()
    {
        var panel = new ChartPanel("t", "x", "y", []);
        Assert.Equal("width", Assert.Throws<ArgumentOutOfRangeException>(() => Charts.RenderLineChart(panel, null, 10, 300)).ParamName);
        Assert.Equal("panels", Assert.Throws<ArgumentException>(() => Charts.RenderPanels("t", [])).ParamName);
    }
}
