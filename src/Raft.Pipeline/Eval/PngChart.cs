using System.Globalization;
using Raft.Model;

namespace Raft.Pipeline.Eval;

/// <summary>
/// Dependency-free line charts as PNG: white background, title, axes with numeric tick labels and a light grid,
/// axis labels, one coloured line per series (with point markers when a series has few points) and a legend.
/// Text uses a built-in 5×7 bitmap font (upper case).
/// </summary>
public static class PngChart
{
    /// <summary>The series colours, in order (RGB); series beyond their number reuse them.</summary>
    public static IReadOnlyList<(byte R, byte G, byte B)> Palette { get; } =
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ];

    private static readonly (byte, byte, byte) Black = (0, 0, 0);
    private static readonly (byte, byte, byte) Grid = (225, 225, 225);
    private static readonly (byte, byte, byte) Frame = (160, 160, 160);
    private static readonly (byte, byte, byte) White = (255, 255, 255);

    /// <summary>
    /// Draws the chart and writes it atomically to <paramref name="path"/> as PNG. Non-finite points break their
    /// line; a chart with no finite point gets the axis range [0, 1].
    /// </summary>
    public static void WriteLineChart(string path, string title, string xLabel, string yLabel,
        IReadOnlyList<ChartSeries> series, int width = 800, int height = 480)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] png = RenderLineChart(title, xLabel, yLabel, series, width, height);
        AtomicFile.Write(path, s => s.Write(png));
    }

    /// <summary>Draws the chart and returns the PNG bytes.</summary>
    public static byte[] RenderLineChart(string title, string xLabel, string yLabel,
        IReadOnlyList<ChartSeries> series, int width = 800, int height = 480)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(xLabel);
        ArgumentNullException.ThrowIfNull(yLabel);
        ArgumentNullException.ThrowIfNull(series);
        if (width < 200 || width > 10000) throw new ArgumentOutOfRangeException(nameof(width), width, $"width must be in [200, 10000], got {width}.");
        if (height < 150 || height > 10000) throw new ArgumentOutOfRangeException(nameof(height), height, $"height must be in [150, 10000], got {height}.");
        for (int i = 0; i < series.Count; i++)
        {
            if (series[i] == null) throw new ArgumentException($"series[{i}] is null.", nameof(series));
            if (series[i].Name == null) throw new ArgumentException($"series[{i}].Name is null.", nameof(series));
            if (series[i].Points == null) throw new ArgumentException($"series[{i}] (\"{series[i].Name}\") has null Points.", nameof(series));
        }

        var finite = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        var (xMin, xMax, xStep) = NiceRange(finite.Select(p => p.X));
        var (yMin, yMax, yStep) = NiceRange(finite.Select(p => p.Y));
        var xTicks = Ticks(xMin, xMax, xStep);
        var yTicks = Ticks(yMin, yMax, yStep);
        var xLabels = xTicks.Select(v => Format(v, xStep)).ToList();
        var yLabels = yTicks.Select(v => Format(v, yStep)).ToList();

        var c = new Canvas(width, height);
        int left = 8 + (yLabel.Length > 0 ? BitmapFont.GlyphHeight + 8 : 0) + yLabels.Max(l => BitmapFont.Width(l)) + 10;
        int right = width - 20;
        int top = title.Length > 0 ? 16 + 2 * BitmapFont.GlyphHeight + 10 : 16;
        int bottom = height - (xLabel.Length > 0 ? 22 + BitmapFont.GlyphHeight + 10 : 22);
        if (right - left < 40 || bottom - top < 40)
            throw new ArgumentException($"a {width}×{height} chart leaves no room for the plot area once labels are placed.", nameof(width));

        double Px(double x) => left + (x - xMin) / (xMax - xMin) * (right - left);
        double Py(double y) => bottom - (y - yMin) / (yMax - yMin) * (bottom - top);

        // title and axis labels
        if (title.Length > 0) c.Text(title, (width - BitmapFont.Width(title, 2)) / 2, 12, 2, Black);
        if (xLabel.Length > 0) c.Text(xLabel, (left + right - BitmapFont.Width(xLabel)) / 2, height - 8 - BitmapFont.GlyphHeight, 1, Black);
        if (yLabel.Length > 0) c.TextUp(yLabel, 8, (top + bottom + BitmapFont.Width(yLabel)) / 2, Black);

        // grid, ticks and tick labels
        for (int i = 0; i < xTicks.Count; i++)
        {
            int x = (int)Math.Round(Px(xTicks[i]));
            c.Line(x, top, x, bottom, Grid, clip: null);
            c.Line(x, bottom, x, bottom + 4, Black, clip: null);
            c.Text(xLabels[i], x - BitmapFont.Width(xLabels[i]) / 2, bottom + 8, 1, Black);
        }
        for (int i = 0; i < yTicks.Count; i++)
        {
            int y = (int)Math.Round(Py(yTicks[i]));
            c.Line(left, y, right, y, Grid, clip: null);
            c.Line(left - 4, y, left, y, Black, clip: null);
            c.Text(yLabels[i], left - 7 - BitmapFont.Width(yLabels[i]), y - BitmapFont.GlyphHeight / 2, 1, Black);
        }
        c.Line(left, top, left, bottom, Black, clip: null);
        c.Line(left, bottom, right, bottom, Black, clip: null);

        // series
        var plot = (left, top, right, bottom);
        for (int s = 0; s < series.Count; s++)
        {
            var colour = Palette[s % Palette.Count];
            var pts = series[s].Points;
            bool markers = pts.Count <= 40;
            (int X, int Y)? prev = null;
            foreach (var (x, y) in pts)
            {
                if (!double.IsFinite(x) || !double.IsFinite(y)) { prev = null; continue; }
                var p = ((int)Math.Round(Px(x)), (int)Math.Round(Py(y)));
                if (prev is var (px, py)) c.ThickLine(px, py, p.Item1, p.Item2, colour, plot);
                if (markers) c.Fill(p.Item1 - 2, p.Item2 - 2, 5, 5, colour, plot);
                prev = p;
            }
        }

        // legend, top right inside the plot
        if (series.Count > 0)
        {
            int rowH = BitmapFont.GlyphHeight + 6;
            int boxW = 8 + 20 + 6 + series.Max(s => BitmapFont.Width(s.Name)) + 8;
            int boxH = 6 + series.Count * rowH;
            int bx = Math.Max(left + 4, right - 6 - boxW), by = top + 6;
            c.Fill(bx, by, boxW, boxH, White, null);
            c.Rect(bx, by, boxW, boxH, Frame);
            for (int s = 0; s < series.Count; s++)
            {
                var colour = Palette[s % Palette.Count];
                int cy = by + 4 + s * rowH + BitmapFont.GlyphHeight / 2;
                c.ThickLine(bx + 8, cy, bx + 28, cy, colour, null);
                c.Text(series[s].Name, bx + 34, cy - BitmapFont.GlyphHeight / 2, 1, Black);
            }
        }
        return PngEncoder.EncodeRgb(width, height, c.Pixels);
    }

    /// <summary>A 1-2-5 tick step and the axis range it rounds the data out to.</summary>
    internal static (double Min, double Max, double Step) NiceRange(IEnumerable<double> values)
    {
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        foreach (double v in values) { min = Math.Min(min, v); max = Math.Max(max, v); }
        if (double.IsInfinity(min)) { min = 0; max = 1; }
        if (max - min <= Math.Abs(max) * 1e-12 || max == min)
        {
            double pad = min == 0 ? 1 : Math.Abs(min) * 0.1;
            min -= pad; max += pad;
        }
        double step = NiceStep((max - min) / 5);
        double lo = Math.Floor(min / step) * step, hi = Math.Ceiling(max / step) * step;
        if (hi <= lo) hi = lo + step;
        return (lo, hi, step);
    }

    private static double NiceStep(double raw)
    {
        double mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double f = raw / mag;
        double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
        return nice * mag;
    }

    private static List<double> Ticks(double min, double max, double step)
    {
        var ticks = new List<double>();
        int n = (int)Math.Round((max - min) / step);
        for (int i = 0; i <= n; i++) ticks.Add(min + i * step);
        return ticks;
    }

    /// <summary>A tick label with as many decimals as the step needs.</summary>
    internal static string Format(double v, double step)
    {
        if (Math.Abs(v) < step * 1e-9) v = 0;
        double big = Math.Max(Math.Abs(v), step);
        if (big >= 1e7 || step < 1e-5) return v.ToString("0.##E+0", CultureInfo.InvariantCulture);
        int decimals = Math.Max(0, (int)Math.Ceiling(-Math.Log10(step) - 1e-9));
        return v.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    private sealed class Canvas
    {
        private readonly int _w, _h;

        public Canvas(int w, int h)
        {
            _w = w; _h = h;
            Pixels = new byte[w * h * 3];
            Array.Fill(Pixels, (byte)255);
        }

        public byte[] Pixels { get; }

        public void Set(int x, int y, (byte R, byte G, byte B) c, (int L, int T, int R, int B)? clip)
        {
            if (x < 0 || y < 0 || x >= _w || y >= _h) return;
            if (clip is var (l, t, r, b) && (x < l || x > r || y < t || y > b)) return;
            int i = (y * _w + x) * 3;
            Pixels[i] = c.R; Pixels[i + 1] = c.G; Pixels[i + 2] = c.B;
        }

        public void Line(int x0, int y0, int x1, int y1, (byte, byte, byte) c, (int, int, int, int)? clip)
        {
            x0 = Math.Clamp(x0, -20000, 20000); x1 = Math.Clamp(x1, -20000, 20000);
            y0 = Math.Clamp(y0, -20000, 20000); y1 = Math.Clamp(y1, -20000, 20000);
            int dx = Math.Abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
            int dy = -Math.Abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
            int err = dx + dy;
            while (true)
            {
                Set(x0, y0, c, clip);
                if (x0 == x1 && y0 == y1) break;
                int e2 = 2 * err;
                if (e2 >= dy) { err += dy; x0 += sx; }
                if (e2 <= dx) { err += dx; y0 += sy; }
            }
        }

        public void ThickLine(int x0, int y0, int x1, int y1, (byte, byte, byte) c, (int, int, int, int)? clip)
        {
            Line(x0, y0, x1, y1, c, clip);
            if (Math.Abs(x1 - x0) >= Math.Abs(y1 - y0)) Line(x0, y0 + 1, x1, y1 + 1, c, clip);
            else Line(x0 + 1, y0, x1 + 1, y1, c, clip);
        }

        public void Fill(int x, int y, int w, int h, (byte, byte, byte) c, (int, int, int, int)? clip)
        {
            for (int j = y; j < y + h; j++)
                for (int i = x; i < x + w; i++) Set(i, j, c, clip);
        }

        public void Rect(int x, int y, int w, int h, (byte, byte, byte) c)
        {
            Line(x, y, x + w - 1, y, c, null);
            Line(x, y + h - 1, x + w - 1, y + h - 1, c, null);
            Line(x, y, x, y + h - 1, c, null);
            Line(x + w - 1, y, x + w - 1, y + h - 1, c, null);
        }

        /// <summary>Text left to right, top-left corner at (x, y).</summary>
        public void Text(string text, int x, int y, int scale, (byte, byte, byte) c)
        {
            for (int k = 0; k < text.Length; k++)
            {
                var g = BitmapFont.Glyph(text[k]);
                for (int r = 0; r < BitmapFont.GlyphHeight; r++)
                    for (int col = 0; col < BitmapFont.GlyphWidth; col++)
                        if ((g[r] >> (BitmapFont.GlyphWidth - 1 - col) & 1) != 0)
                            Fill(x + (k * BitmapFont.Advance + col) * scale, y + r * scale, scale, scale, c, null);
            }
        }

        /// <summary>Text rotated 90° counter-clockwise (reading bottom to top), starting at (x, y) = bottom-left.</summary>
        public void TextUp(string text, int x, int y, (byte, byte, byte) c)
        {
            for (int k = 0; k < text.Length; k++)
            {
                var g = BitmapFont.Glyph(text[k]);
                for (int r = 0; r < BitmapFont.GlyphHeight; r++)
                    for (int col = 0; col < BitmapFont.GlyphWidth; col++)
                        if ((g[r] >> (BitmapFont.GlyphWidth - 1 - col) & 1) != 0)
                            Set(x + r, y - (k * BitmapFont.Advance + col), c, null);
            }
        }
    }
}
