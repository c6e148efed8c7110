using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Tests;

public sealed class PngChartTests
{
    /// <summary>Bit-by-bit CRC-32 (no table), independent of the encoder's.</summary>
    private static uint Crc(byte[] data, int offset, int count)
    {
        uint c = 0xFFFFFFFF;
        for (int i = offset; i < offset + count; i++)
        {
            c ^= data[i];
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (uint)-(int)(c & 1));
        }
        return ~c;
    }

    private sealed record Image(int Width, int Height, byte[] Rgb)
    {
        public (byte, byte, byte) At(int x, int y) { int i = (y * Width + x) * 3; return (Rgb[i], Rgb[i + 1], Rgb[i + 2]); }
    }

    /// <summary>Parses the PNG, checking signature, chunk order, every CRC and the IDAT size; returns the pixels.</summary>
    private static Image Decode(byte[] png)
    {
        Assert.Equal(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }, png[..8]);
        int pos = 8, width = 0, height = 0;
        var idat = new MemoryStream();
        var types = new List<string>();
        while (pos < png.Length)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = Encoding.ASCII.GetString(png, pos + 4, 4);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + len));
            Assert.Equal(Crc(png, pos + 4, len + 4), crc);
            var data = png.AsSpan(pos + 8, len);
            types.Add(type);
            if (type == "IHDR")
            {
                Assert.Equal(13, len);
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                Assert.Equal(new byte[] { 8, 2, 0, 0, 0 }, data[8..].ToArray()); // 8-bit RGB
            }
            if (type == "IDAT") idat.Write(data);
            pos += 12 + len;
        }
        Assert.Equal(png.Length, pos);
        Assert.Equal("IHDR", types[0]);
        Assert.Equal("IEND", types[^1]);

        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        var raw = new MemoryStream();
        z.CopyTo(raw);
        int stride = width * 3;
        Assert.Equal(height * (stride + 1), raw.Length);
        var bytes = raw.ToArray();
        var rgb = new byte[height * stride];
        for (int y = 0; y < height; y++)
        {
            byte filter = bytes[y * (stride + 1)];
            Assert.InRange(filter, (byte)0, (byte)4);
            for (int i = 0; i < stride; i++)
            {
                int a = i >= 3 ? rgb[y * stride + i - 3] : 0, b = y > 0 ? rgb[(y - 1) * stride + i] : 0;
                int c = i >= 3 && y > 0 ? rgb[(y - 1) * stride + i - 3] : 0;
                int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                int pred = filter switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, _ => pa <= pb && pa <= pc ? a : pb <= pc ? b : c };
                rgb[y * stride + i] = (byte)(bytes[y * (stride + 1) + 1 + i] + pred);
            }
        }
        return new Image(width, height, rgb);
    }

    private static int Count(Image img, (byte, byte, byte) colour, Func<int, int, bool>? where = null)
    {
        int n = 0;
        for (int y = 0; y < img.Height; y++)
            for (int x = 0; x < img.Width; x++)
                if (img.At(x, y) == colour && (where == null || where(x, y))) n++;
        return n;
    }

    [Theory]
    [InlineData(800, 480)]
    [InlineData(333, 217)]
    [InlineData(1024, 600)]
    public void Writes_a_valid_png_with_series_in_their_colours(int width, int height)
    {
        var rng = new Random();
        // a rising series (lower-left to upper-right) and a falling one, with random noise and scale
        double scale = Math.Pow(10, rng.Next(-3, 5));
        var up = Enumerable.Range(0, 50).Select(i => ((double)i, scale * (i + rng.NextDouble()))).ToList();
        var down = Enumerable.Range(0, 50).Select(i => ((double)i, scale * (50 - i + rng.NextDouble()))).ToList();
        using var dir = new TempDir();
        string path = dir.File("chart.png");
        PngChart.WriteLineChart(path, "Loss by step", "step", "loss", [new ChartSeries("rising", up), new ChartSeries("falling", down), new ChartSeries("empty", [])], width, height);

        var img = Decode(File.ReadAllBytes(path));
        Assert.Equal((width, height), (img.Width, img.Height));
        var c0 = PngChart.Palette[0];
        var c1 = PngChart.Palette[1];
        var c2 = PngChart.Palette[2];
        int w = width, h = height;
        // the rising line passes through the lower-left quarter, the falling one through the upper-left quarter
        Assert.True(Count(img, c0, (x, y) => x < w / 2 && y > h / 2) > 20);
        Assert.True(Count(img, c1, (x, y) => x < w / 2 && y < h / 2) > 20);
        Assert.Equal(0, Count(img, c0, (x, y) => x < w / 3 && y < h / 3));
        // an empty series shows only as its legend swatch (a short 2-pixel thick segment)
        int legendOnly = Count(img, c2);
        Assert.InRange(legendOnly, 1, 60);
        Assert.True(Count(img, c0) > 4 * legendOnly);
        Assert.True(Count(img, (0, 0, 0)) > 100); // axes and text
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Fact]
    public void Handles_degenerate_data()
    {
        var series = new[]
        {
            new ChartSeries("single", [(3.0, 7.0)]),
            new ChartSeries("gaps", [(0.0, 1.0), (1.0, double.NaN), (2.0, 2.0), (double.PositiveInfinity, 3.0)]),
        };
        var img = Decode(PngChart.RenderLineChart("t", "x", "y", series));
        Assert.True(Count(img, PngChart.Palette[0]) > 20); // marker + legend
        Assert.True(Count(img, PngChart.Palette[1]) > 20);
        var empty = Decode(PngChart.RenderLineChart("", "", "", []));
        Assert.Equal((800, 480), (empty.Width, empty.Height));
    }

    [Theory]
    [InlineData(10, 480)]
    [InlineData(800, 5)]
    public void Rejects_tiny_sizes(int width, int height) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => PngChart.RenderLineChart("t", "x", "y", [], width, height));

    [Fact]
    public void Crc_matches_the_known_check_value()
    {
        Assert.Equal(0xCBF43926u, PngEncoder.Crc32("123456789"u8));
        var data = Enumerable.Range(0, 1000).Select(_ => (byte)Random.Shared.Next(256)).ToArray();
        Assert.Equal(Crc(data, 0, data.Length), PngEncoder.Crc32(data));
    }

    [Theory]
    [InlineData(0.0, 0.5, "0.0")]
    [InlineData(2.5, 0.5, "2.5")]
    [InlineData(1000, 200, "1000")]
    [InlineData(0.002, 0.001, "0.002")]
    [InlineData(-3, 1, "-3")]
    public void Tick_labels(double v, double step, string expected) => Assert.Equal(expected, PngChart.Format(v, step));
}
