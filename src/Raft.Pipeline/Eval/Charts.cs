using Raft.Model;
using ScottPlot;

namespace Raft.Pipeline.Eval;

/// <summary>
/// Line charts as PNG, drawn by ScottPlot (SkiaSharp underneath): the demo's learning curves and <c>raft plot</c>'s
/// per-step training metrics. Lines break at non-finite points; a note (what was evaluated, on which subset) is drawn
/// under the title. Text uses the DejaVu Sans font when the system has it (Debian: fonts-dejavu-core), else the
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

    /// <summary>Renders one panel as PNG bytes.</summary>
    public static byte[] RenderLineChart(ChartPanel panel, string? note = null, int width = 960, int height = 600)
    {
        CheckSize(width, height);
        ArgumentNullException.ThrowIfNull(panel);
        var plot = new Plot();
        try
        {
            Draw(plot, panel, note, fontScale: 1f);
            return plot.GetImageBytes(width, height, ImageFormat.Png);
        }
        finally { plot.Dispose(); }
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
        int header = string.IsNullOrEmpty(note) ? 44 : 70;
        using var surface = SkiaSharp.SKSurface.Create(new SkiaSharp.SKImageInfo(columns * panelWidth, rows * panelHeight + header));
        var canvas = surface.Canvas;
        canvas.Clear(SkiaSharp.SKColors.White);
        using (var font = new SkiaSharp.SKFont(Typeface(bold: true), 22))
        using (var paint = new SkiaSharp.SKPaint { Color = SkiaSharp.SKColors.Black, IsAntialias = true })
        {
            canvas.DrawText(title, columns * panelWidth / 2f, 30, SkiaSharp.SKTextAlign.Center, font, paint);
            if (!string.IsNullOrEmpty(note))
            {
                using var small = new SkiaSharp.SKFont(Typeface(bold: false), 15);
                paint.Color = new SkiaSharp.SKColor(60, 60, 60);
                canvas.DrawText(note, columns * panelWidth / 2f, 56, SkiaSharp.SKTextAlign.Center, small, paint);
            }
        }
        for (int i = 0; i < panels.Count; i++)
        {
            using var plot = new Plot();
            Draw(plot, panels[i], note: null, fontScale: 0.9f);
            using var image = plot.GetImage(panelWidth, panelHeight);
            using var sk = SkiaSharp.SKImage.FromEncodedData(image.GetImageBytes(ImageFormat.Png));
            canvas.DrawImage(sk, i % columns * panelWidth, header + i / columns * panelHeight);
        }
        using var snapshot = surface.Snapshot();
        using var data = snapshot.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return data.ToArray();
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

    private static void Draw(Plot plot, ChartPanel panel, string? note, float fontScale)
    {
        if (FontName.Value is { } font) plot.Font.Set(font);
        plot.Title(string.IsNullOrEmpty(note) ? panel.Title : $"{panel.Title}\n{note}", size: 20 * fontScale);
        plot.XLabel(panel.XLabel, size: 16 * fontScale);
        plot.YLabel(panel.YLabel, size: 16 * fontScale);
        // plain invariant numbers (no thousands separator that reads as a decimal point: 1000, not "1.000")
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = Tick };
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = Tick };
        plot.Axes.Bottom.TickLabelStyle.FontSize = 13 * fontScale;
        plot.Axes.Left.TickLabelStyle.FontSize = 13 * fontScale;
        bool any = false;
        for (int s = 0; s < panel.Series.Count; s++)
        {
            var series = panel.Series[s];
            var colour = Palette[s % Palette.Count];
            bool labelled = false;
            int finite = series.Points.Count(p => double.IsFinite(p.X) && double.IsFinite(p.Y));
            foreach (var segment in Segments(series.Points))
            {
                var line = plot.Add.Scatter(segment.Select(p => p.X).ToArray(), segment.Select(p => p.Y).ToArray(), colour);
                line.LineWidth = 2;
                line.MarkerSize = finite <= 60 ? 5 : 0;
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
                plot.Legend.FontSize = 13 * fontScale;
            }
            // keep every line off the frame (a constant 0 line would otherwise sit on the axis)
            plot.Axes.Margins(0.03, 0.08);
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
