using Raft.Model;
using ScottPlot;

namespace Raft.Pipeline.Eval;

/// <summary>
/// Line charts as PNG, drawn by ScottPlot (SkiaSharp underneath): the demo's learning curves and <c>raft plot</c>'s
/// per-step training metrics. Lines break at non-finite points; a note (what was evaluated, on which subset) is drawn
/// under the title, both wrapped to the image's width. Text uses the DejaVu Sans font when the system has it (Debian: fonts-dejavu-core), else the
/// font ScottPlot's font resolver finds.
/// </summary>
public static class Charts
{
    /// <summary>The line colours, in series order (Tableau 10: distinguishable, and readable on white).</summary>
    public static readonly IReadOnlyList<Color> Palette =
    [
        Color.FromHex("#1f77b4"), Color.FromHex("#ff7f0e"), Color.FromHex("#2ca02c"), Color.FromHex("#d62728"),
        Color.FromHex("#9467bd"), Color.FromHex("#8c564b"), Color.FromHex("#e377c2"), Color.FromHex("#7f7f7f"),
    ];

    private const string DejaVu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    private static readonly Lazy<string?> FontName = new(() =>
    {
        if (!File.Exists(DejaVu)) return null;
        Fonts.AddFontFile("DejaVu Sans", DejaVu);
        return "DejaVu Sans";
    });

    /// <summary>
    /// Renders one panel as PNG bytes: its title in bold and the note in a smaller grey font under it, both wrapped to
    /// the width, then the plot.
    /// </summary>
    public static byte[] RenderLineChart(ChartPanel panel, string? note = null, int width = 960, int height = 600)
    {
        CheckSize(width, height);
        ArgumentNullException.ThrowIfNull(panel);
        float scale = Math.Clamp(width / 800f, 0.8f, 1f);
        var header = Header(panel.Title, note, width, 22 * scale, 16 * scale);
        if (height - header.Height < 100)
            throw new ArgumentOutOfRangeException(nameof(height), height, $"height leaves {height - header.Height} pixels for the plot under its title and note; at least 100 are needed.");
        using var plot = new Plot();
        Draw(plot, panel with { Title = "" }, fontScale: scale);
        return Compose(header, width, height, canvas => DrawPlot(canvas, plot, 0, header.Height, width, height - header.Height));
    }

    /// <summary>Renders several panels in a grid of <paramref name="columns"/> columns, with an overall title, as PNG bytes.</summary>
    public static byte[] RenderPanels(string title, IReadOnlyList<ChartPanel> panels, string? note = null, int columns = 2,
        int panelWidth = 640, int panelHeight = 400)
    {
        ArgumentNullException.ThrowIfNull(panels);
        if (panels.Count == 0) throw new ArgumentException("panels must hold at least one panel.", nameof(panels));
        if (columns < 1) throw new ArgumentOutOfRangeException(nameof(columns), columns, "columns must be ≥ 1.");
        CheckSize(panelWidth, panelHeight);
        columns = Math.Min(columns, panels.Count);
        int rows = (panels.Count + columns - 1) / columns;
        int width = columns * panelWidth;
        var header = Header(title, note, width, 22, 15);
        return Compose(header, width, rows * panelHeight + header.Height, canvas =>
        {
            for (int i = 0; i < panels.Count; i++)
            {
                using var plot = new Plot();
                Draw(plot, panels[i], fontScale: 0.9f);
                DrawPlot(canvas, plot, i % columns * panelWidth, header.Height + i / columns * panelHeight, panelWidth, panelHeight);
            }
        });
    }

    /// <summary>A chart's header: title lines (bold) and note lines (smaller, grey), each wrapped to fit the width.</summary>
    /// <remarks>8 px above, 6 below; a 22 px title line takes 30 px and a 15 px note line 26 (so one of each: 70 px).</remarks>
    private sealed record HeaderLines(IReadOnlyList<string> Title, float TitleSize, IReadOnlyList<string> Note, float NoteSize)
    {
        public int TitleLine => (int)Math.Round(TitleSize * 15 / 11);
        public int NoteLine => (int)Math.Round(NoteSize * 26 / 15);
        public int Height => 8 + Title.Count * TitleLine + Note.Count * NoteLine + 6;
    }

    private static HeaderLines Header(string? title, string? note, int width, float titleSize, float noteSize)
    {
        float room = width - 24;
        using var bold = new SkiaSharp.SKFont(Typeface(bold: true), titleSize);
        using var regular = new SkiaSharp.SKFont(Typeface(bold: false), noteSize);
        return new HeaderLines(Wrap(title, bold, room), titleSize, Wrap(note, regular, room), noteSize);
    }

    /// <summary>
    /// <paramref name="text"/> broken at spaces (and at its own line breaks) into lines no wider than
    /// <paramref name="width"/> pixels in <paramref name="font"/>; a single word wider than that gets a line of its own.
    /// </summary>
    internal static IReadOnlyList<string> Wrap(string? text, SkiaSharp.SKFont font, float width)
    {
        var lines = new List<string>();
        if (string.IsNullOrWhiteSpace(text)) return lines;
        foreach (var paragraph in text.Split('\n'))
        {
            string line = "";
            foreach (var word in paragraph.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                string candidate = line.Length == 0 ? word : line + " " + word;
                if (line.Length > 0 && font.MeasureText(candidate) > width) { lines.Add(line); line = word; }
                else line = candidate;
            }
            if (line.Length > 0) lines.Add(line);
        }
        return lines;
    }

    /// <summary>A white canvas of the given size with the header drawn at its top, then <paramref name="body"/>, as PNG bytes.</summary>
    private static byte[] Compose(HeaderLines header, int width, int height, Action<SkiaSharp.SKCanvas> body)
    {
        using var surface = SkiaSharp.SKSurface.Create(new SkiaSharp.SKImageInfo(width, height));
        var canvas = surface.Canvas;
        canvas.Clear(SkiaSharp.SKColors.White);
        using (var paint = new SkiaSharp.SKPaint { Color = SkiaSharp.SKColors.Black, IsAntialias = true })
        {
            int y = 8; // the bottom of the lines drawn so far; each baseline sits 8 px above its line's bottom
            using (var bold = new SkiaSharp.SKFont(Typeface(bold: true), header.TitleSize))
                foreach (var line in header.Title)
                {
                    y += header.TitleLine;
                    canvas.DrawText(line, width / 2f, y - 8, SkiaSharp.SKTextAlign.Center, bold, paint);
                }
            paint.Color = new SkiaSharp.SKColor(60, 60, 60);
            using (var regular = new SkiaSharp.SKFont(Typeface(bold: false), header.NoteSize))
                foreach (var line in header.Note)
                {
                    y += header.NoteLine;
                    canvas.DrawText(line, width / 2f, y - 8, SkiaSharp.SKTextAlign.Center, regular, paint);
                }
        }
        body(canvas);
        using var snapshot = surface.Snapshot();
        using var data = snapshot.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static void DrawPlot(SkiaSharp.SKCanvas canvas, Plot plot, int x, int y, int width, int height)
    {
        using var image = plot.GetImage(width, height);
        using var sk = SkiaSharp.SKImage.FromEncodedData(image.GetImageBytes(ImageFormat.Png));
        canvas.DrawImage(sk, x, y);
    }

    /// <summary>Writes <see cref="RenderLineChart"/>'s PNG to <paramref name="path"/> atomically.</summary>
    public static void WriteLineChart(string path, ChartPanel panel, string? note = null, int width = 960, int height = 600)
    {
        var png = RenderLineChart(panel, note, width, height);
        AtomicFile.Write(path, s => s.Write(png));
    }

    /// <summary>Writes <see cref="RenderPanels"/>'s PNG to <paramref name="path"/> atomically.</summary>
    public static void WritePanels(string path, string title, IReadOnlyList<ChartPanel> panels, string? note = null, int columns = 2)
    {
        var png = RenderPanels(title, panels, note, columns);
        AtomicFile.Write(path, s => s.Write(png));
    }

    private static void CheckSize(int width, int height)
    {
        if (width < 200 || width > 8000) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be in 200..8000 pixels.");
        if (height < 150 || height > 8000) throw new ArgumentOutOfRangeException(nameof(height), height, "height must be in 150..8000 pixels.");
    }

    private static SkiaSharp.SKTypeface Typeface(bool bold)
    {
        string file = bold ? DejaVu.Replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf") : DejaVu;
        return File.Exists(file) ? SkiaSharp.SKTypeface.FromFile(file)
            : SkiaSharp.SKTypeface.FromFamilyName(Fonts.Default, bold ? SkiaSharp.SKFontStyle.Bold : SkiaSharp.SKFontStyle.Normal);
    }

    private static void Draw(Plot plot, ChartPanel panel, float fontScale)
    {
        if (panel.Series.FirstOrDefault(x => !(x.LineWidth is >= 0.5f and <= 20)) is { } bad)
            throw new ArgumentException($"panel \"{panel.Title}\": series \"{bad.Name}\" has LineWidth {bad.LineWidth}; it must be in 0.5..20 pixels.", nameof(panel));
        if (panel.YLimits is { } limits && !(double.IsFinite(limits.Bottom) && double.IsFinite(limits.Top) && limits.Bottom < limits.Top))
            throw new ArgumentException($"panel \"{panel.Title}\": YLimits ({limits.Bottom}, {limits.Top}) must be finite with bottom < top.", nameof(panel));
        if (FontName.Value is { } font) plot.Font.Set(font);
        if (panel.Title.Length > 0) plot.Title(panel.Title, size: 20 * fontScale);
        plot.XLabel(panel.XLabel, size: 17 * fontScale);
        plot.YLabel(panel.YLabel, size: 17 * fontScale);
        // plain invariant numbers (no thousands separator that reads as a decimal point: 1000, not "1.000")
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = Tick };
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = Tick };
        plot.Axes.Bottom.TickLabelStyle.FontSize = 14 * fontScale;
        plot.Axes.Left.TickLabelStyle.FontSize = 14 * fontScale;
        bool any = false;
        for (int s = 0; s < panel.Series.Count; s++)
        {
            var series = panel.Series[s];
            var colour = Palette[(series.ColorIndex ?? s) % Palette.Count];
            bool labelled = false;
            int finite = series.Points.Count(p => double.IsFinite(p.X) && double.IsFinite(p.Y));
            foreach (var segment in Segments(series.Points))
            {
                var line = plot.Add.Scatter(segment.Select(p => p.X).ToArray(), segment.Select(p => p.Y).ToArray(), colour);
                line.LineWidth = series.LineWidth;
                line.MarkerSize = finite <= 60 ? series.LineWidth + 4 : 0;
                if (series.Dashed)
                {
                    line.LinePattern = LinePattern.Dashed;
                    line.MarkerShape = MarkerShape.FilledSquare;
                }
                if (!labelled) { line.LegendText = series.Name; labelled = true; }
                any = true;
            }
        }
        if (!any) plot.Add.Annotation("no data", Alignment.MiddleCenter);
        else
        {
            if (panel.Series.Count > 1)
            {
                plot.ShowLegend(Edge.Bottom); // under the data, never over it
                plot.Legend.FontSize = 15 * fontScale;
            }
            // keep every line off the frame (a constant 0 line would otherwise sit on the axis)
            plot.Axes.Margins(0.03, 0.08);
            if (panel.YLimits is { } y)
            {
                plot.Axes.AutoScale();
                plot.Axes.SetLimitsY(y.Bottom, y.Top);
            }
        }
    }

    /// <summary>A tick label: up to 5 significant digits, invariant culture.</summary>
    internal static string Tick(double v) => Math.Abs(v) < 1e-12 ? "0" : v.ToString("G5", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The runs of consecutive finite points of a series.</summary>
    internal static IEnumerable<(double X, double Y)[]> Segments(IReadOnlyList<(double X, double Y)> points)
    {
        var run = new List<(double X, double Y)>();
        foreach (var p in points)
        {
            if (double.IsFinite(p.X) && double.IsFinite(p.Y)) { run.Add(p); continue; }
            if (run.Count > 0) yield return run.ToArray();
            run.Clear();
        }
        if (run.Count > 0) yield return run.ToArray();
    }
}
