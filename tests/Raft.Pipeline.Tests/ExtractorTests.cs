using System.Globalization;
using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Tests;

public sealed class ExtractorTests
{
    [Theory]
    [InlineData("The answer is zfkab.", "zfkab")]
    [InlineData("rev(\"kfz\") ++ \"ab\" -> \"zfkab\"", "zfkab")]
    [InlineData("|kfz| + |ab| = 3 + 2 = 5", "5")]
    [InlineData("Sum: 68 / Compare: 68 vs 70 / Result: 70", "70")]
    [InlineData("so x = -7.", "-7")]
    [InlineData("pages 3-5", "5")]
    [InlineData("word-5", "5")]
    [InlineData("THE ANSWER IS GOD!!", "GOD")]
    [InlineData("[The answer is 4.]", "4")]
    [InlineData("", null)]
    [InlineData(" ?! -- ", null)]
    public void FinalToken_takes_the_last_letter_or_digit_run(string text, string? expected)
    {
        Assert.Equal(expected, new FinalTokenExtractor().Extract(text));
        Assert.Equal(expected, AnswerExtractors.Parse("final_token").Extract(text));
    }

    [Theory]
    [InlineData("The answer is 42.", "42")]
    [InlineData("so x = -7", "-7")]
    [InlineData("+15 apples", "15")]
    [InlineData("It costs 1,234 dollars", "1234")]
    [InlineData("total 1,234,567.50 units", "1234567.5")]
    [InlineData("3.1400", "3.14")]
    [InlineData("2.000", "2")]
    [InlineData("007", "7")]
    [InlineData("about .5 of it", "0.5")]
    [InlineData("-0.0", "0")]
    [InlineData("pages 3-5", "5")]
    [InlineData("first 10 then 20 and finally 30 apples", "30")]
    [InlineData("list: 1, 2, 3", "3")]
    [InlineData("no digits here", null)]
    [InlineData("", null)]
    public void Last_number(string text, string? expected) => Assert.Equal(expected, new LastNumberExtractor().Extract(text));

    [Fact]
    public void Last_number_recovers_random_numbers()
    {
        var rng = new Random();
        var ex = new LastNumberExtractor();
        for (int i = 0; i < 200; i++)
        {
            decimal v = Math.Round((decimal)(rng.NextDouble() * 2e6 - 1e6), rng.Next(0, 4));
            string written = rng.Next(2) == 0 ? v.ToString("N" + rng.Next(0, 4), CultureInfo.InvariantCulture) : v.ToString(CultureInfo.InvariantCulture);
            string text = $"step {rng.Next(100)}: we get {written}{(rng.Next(2) == 0 ? "." : "")}";
            string expected = decimal.Parse(written, NumberStyles.Number, CultureInfo.InvariantCulture).ToString("0.#############", CultureInfo.InvariantCulture);
            if (expected == "-0") expected = "0";
            Assert.Equal(expected, ex.Extract(text));
        }
    }

    [Theory]
    [InlineData("Answer:", "Reasoning...\nAnswer: Paris.\n", "Paris")]
    [InlineData("Answer:", "answer: first\nthen ANSWER:  second one  ..", "second one")]
    [InlineData("Answer:", "no marker here", null)]
    [InlineData("Answer:", "Answer:   \n", null)]
    [InlineData("####", "work\n#### 72", "72")]
    public void Marker(string marker, string text, string? expected) => Assert.Equal(expected, new MarkerExtractor(marker).Extract(text));

    [Theory]
    [InlineData(@"so \boxed{42}", "42")]
    [InlineData(@"\boxed{1} then \boxed{ \frac{1}{2} }", @"\frac{1}{2}")]
    [InlineData(@"\boxed{{a}{b}}", "{a}{b}")]
    [InlineData(@"\boxed{7} and \boxed{unclosed", "7")]
    [InlineData(@"\boxed{}", null)]
    [InlineData("nothing", null)]
    public void Boxed(string text, string? expected) => Assert.Equal(expected, new BoxedExtractor().Extract(text));

    [Theory]
    [InlineData(@"ans=(\w+)", "ans=a ans=bcd", "bcd")]
    [InlineData(@"\d+", "1 22 333", "333")]
    [InlineData(@"(x)?y", "y", "y")]
    [InlineData(@"zz", "abc", null)]
    public void Regex(string pattern, string text, string? expected) => Assert.Equal(expected, new RegexExtractor(pattern).Extract(text));

    [Fact]
    public void Invalid_regex_names_the_pattern()
    {
        var e = Assert.Throws<ArgumentException>(() => new RegexExtractor("(unclosed"));
        Assert.Contains("(unclosed", e.Message);
    }

    [Theory]
    [InlineData("last_number", typeof(LastNumberExtractor), "last_number")]
    [InlineData("boxed", typeof(BoxedExtractor), "boxed")]
    [InlineData("exact", typeof(ExactExtractor), "exact")]
    [InlineData("marker:Answer:", typeof(MarkerExtractor), "marker:Answer:")]
    [InlineData(@"regex:ans=(\d+)", typeof(RegexExtractor), @"regex:ans=(\d+)")]
    public void Parse_builds_the_named_extractor(string spec, Type type, string name)
    {
        var ex = AnswerExtractors.Parse(spec);
        Assert.IsType(type, ex);
        Assert.Equal(name, ex.Name);
    }

    [Theory]
    [InlineData("last-number")]
    [InlineData("marker:")]
    [InlineData("regex:[")]
    [InlineData("")]
    public void Parse_rejects_bad_specs_naming_them(string spec)
    {
        var e = Assert.Throws<ArgumentException>(() => AnswerExtractors.Parse(spec));
        Assert.Contains($"\"{spec}\"", e.Message);
    }
}
