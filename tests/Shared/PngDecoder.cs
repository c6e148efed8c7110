using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Raft.Tests.Shared;

/// <summary>
/// A small PNG decoder written for the tests, independent of the library that encodes the charts: checks the
/// signature, the chunk sequence and every chunk's CRC-32, inflates IDAT and undoes the five row filters of 8-bit RGB or
/// RGBA images (non-interlaced). Linked source, one copy for each test project that reads charts.
/// </summary>
internal static class PngDecoder
{
    /// <summary>A decoded image: RGB per pixel (alpha dropped after compositing on white).</summary>
    public sealed record Image(int Width, int Height, byte[] Rgb)
    {
        public (byte R, byte G, byte B) At(int x, int y) { int i = (y * Width + x) * 3; return (Rgb[i], Rgb[i + 1], Rgb[i + 2]); }

        /// <summary>Pixels (in the rectangle, default all) satisfying <paramref name="test"/>.</summary>
        public int Count(Func<(byte R, byte G, byte B), bool> test, int x0 = 0, int y0 = 0, int x1 = -1, int y1 = -1)
        {
            if (x1 < 0) x1 = Width;
            if (y1 < 0) y1 = Height;
            int n = 0;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++)
                    if (test(At(x, y))) n++;
            return n;
        }

        /// <summary>Pixels within <paramref name="tolerance"/> per channel of a colour.</summary>
        public int CountNear((byte R, byte G, byte B) c, int tolerance = 24) =>
            Count(p => Math.Abs(p.R - c.R) <= tolerance && Math.Abs(p.G - c.G) <= tolerance && Math.Abs(p.B - c.B) <= tolerance);
    }

    private static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (uint)-(int)(c & 1));
        }
        return ~c;
    }

    public static Image Decode(byte[] png)
    {
        Assert.Equal(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }, png[..8]);
        int pos = 8, width = 0, height = 0, channels = 0;
        var idat = new MemoryStream();
        var types = new List<string>();
        while (pos < png.Length)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = Encoding.ASCII.GetString(png, pos + 4, 4);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + len));
            Assert.True(Crc(png.AsSpan(pos + 4, len + 4)) == crc, $"bad CRC in chunk {type}");
            var data = png.AsSpan(pos + 8, len);
            types.Add(type);
            if (type == "IHDR")
            {
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                Assert.Equal(8, data[8]);                  // bit depth
                Assert.True(data[9] is 2 or 6, $"colour type {data[9]}: only RGB and RGBA are decoded here");
                Assert.Equal(0, data[12]);                 // not interlaced
                channels = data[9] == 2 ? 3 : 4;
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
        int stride = width * channels;
        Assert.Equal((long)height * (stride + 1), raw.Length);
        var bytes = raw.ToArray();
        var px = new byte[height * stride];
        for (int y = 0; y < height; y++)
        {
            byte filter = bytes[y * (stride + 1)];
            Assert.InRange(filter, (byte)0, (byte)4);
            for (int i = 0; i < stride; i++)
            {
                int a = i >= channels ? px[y * stride + i - channels] : 0, b = y > 0 ? px[(y - 1) * stride + i] : 0;
                int c = i >= channels && y > 0 ? px[(y - 1) * stride + i - channels] : 0;
                int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                int pred = filter switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, _ => pa <= pb && pa <= pc ? a : pb <= pc ? b : c };
                px[y * stride + i] = (byte)(bytes[y * (stride + 1) + 1 + i] + pred);
            }
        }
        var rgb = new byte[width * height * 3];
        for (int i = 0, n = width * height; i < n; i++)
        {
            int alpha = channels == 4 ? px[i * 4 + 3] : 255;
            for (int ch = 0; ch < 3; ch++)
                rgb[i * 3 + ch] = (byte)((px[i * channels + ch] * alpha + 255 * (255 - alpha) + 127) / 255);
        }
        return new Image(width, height, rgb);
    }
}
