namespace Raft.Pipeline.Eval;

/// <summary>
/// A built-in 5×7 bitmap font: digits, A–Z (lower case drawn as upper case) and <c>. - % : ( ) / _ , + = ?</c> and
/// space; any other character is drawn as '?'.
/// </summary>
internal static class BitmapFont
{
    public const int GlyphWidth = 5;
    public const int GlyphHeight = 7;
    /// <summary>Horizontal advance per character (glyph plus one column of space), before scaling.</summary>
    public const int Advance = 6;

    private static readonly Dictionary<char, byte[]> Glyphs = Build();

    private static Dictionary<char, byte[]> Build()
    {
        // each glyph: 7 rows of 5 columns, '#' = ink
        string[] defs =
        [
            "0 .###. #...# #..## #.#.# ##..# #...# .###.",
            "1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
            "2 .###. #...# ....# ...#. ..#.. .#... #####",
            "3 ##### ...#. ..#.. ...#. ....# #...# .###.",
            "4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.",
            "5 ##### #.... ####. ....# ....# #...# .###.",
            "6 ..##. .#... #.... ####. #...# #...# .###.",
            "7 ##### ....# ...#. ..#.. .#... .#... .#...",
            "8 .###. #...# #...# .###. #...# #...# .###.",
            "9 .###. #...# #...# .#### ....# ...#. .##..",
            "A .###. #...# #...# ##### #...# #...# #...#",
            "B ####. #...# #...# ####. #...# #...# ####.",
            "C .###. #...# #.... #.... #.... #...# .###.",
            "D ###.. #..#. #...# #...# #...# #..#. ###..",
            "E ##### #.... #.... ####. #.... #.... #####",
            "F ##### #.... #.... ####. #.... #.... #....",
            "G .###. #...# #.... #.### #...# #...# .####",
            "H #...# #...# #...# ##### #...# #...# #...#",
            "I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
            "J ..### ...#. ...#. ...#. ...#. #..#. .##..",
            "K #...# #..#. #.#.. ##... #.#.. #..#. #...#",
            "L #.... #.... #.... #.... #.... #.... #####",
            "M #...# ##.## #.#.# #.#.# #...# #...# #...#",
            "N #...# #...# ##..# #.#.# #..## #...# #...#",
            "O .###. #...# #...# #...# #...# #...# .###.",
            "P ####. #...# #...# ####. #.... #.... #....",
            "Q .###. #...# #...# #...# #.#.# #..#. .##.#",
            "R ####. #...# #...# ####. #.#.. #..#. #...#",
            "S .#### #.... #.... .###. ....# ....# ####.",
            "T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
            "U #...# #...# #...# #...# #...# #...# .###.",
            "V #...# #...# #...# #...# #...# .#.#. ..#..",
            "W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
            "X #...# #...# .#.#. ..#.. .#.#. #...# #...#",
            "Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
            "Z ##### ....# ...#. ..#.. .#... #.... #####",
            ". ..... ..... ..... ..... ..... .##.. .##..",
            "- ..... ..... ..... ##### ..... ..... .....",
            "% ##... ##..# ...#. ..#.. .#... #..## ...##",
            ": ..... .##.. .##.. ..... .##.. .##.. .....",
            "( ...#. ..#.. .#... .#... .#... ..#.. ...#.",
            ") .#... ..#.. ...#. ...#. ...#. ..#.. .#...",
            "/ ..... ....# ...#. ..#.. .#... #.... .....",
            "_ ..... ..... ..... ..... ..... ..... #####",
            ", ..... ..... ..... ..... .##.. ..#.. .#...",
            "+ ..... ..#.. ..#.. ##### ..#.. ..#.. .....",
            "= ..... ..... ##### ..... ##### ..... .....",
            "? .###. #...# ....# ...#. ..#.. ..... ..#..",
        ];
        var map = new Dictionary<char, byte[]>();
        foreach (string def in defs)
        {
            string[] parts = def.Split(' ');
            var rows = new byte[GlyphHeight];
            for (int r = 0; r < GlyphHeight; r++)
                for (int c = 0; c < GlyphWidth; c++)
                    if (parts[r + 1][c] == '#') rows[r] |= (byte)(1 << (GlyphWidth - 1 - c));
            map[parts[0][0]] = rows;
        }
        map[' '] = new byte[GlyphHeight];
        return map;
    }

    /// <summary>The glyph rows of <paramref name="c"/> (bit 4 = leftmost column).</summary>
    public static byte[] Glyph(char c) =>
        Glyphs.TryGetValue(char.ToUpperInvariant(c), out var g) ? g : Glyphs['?'];

    /// <summary>Whether <paramref name="c"/> has its own glyph (rather than '?').</summary>
    public static bool Has(char c) => Glyphs.ContainsKey(char.ToUpperInvariant(c));

    /// <summary>The width in pixels of <paramref name="text"/> at <paramref name="scale"/>.</summary>
    public static int Width(string text, int scale = 1) => text.Length == 0 ? 0 : (text.Length * Advance - 1) * scale;
}
