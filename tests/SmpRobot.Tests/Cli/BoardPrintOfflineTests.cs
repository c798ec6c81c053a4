using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OpenCvSharp;
using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

/// <summary>
/// <c>smp board print</c> of a board file on this computer renders in-process: with <c>--controller</c> at a port
/// where nothing listens it still writes the page; a board file that is not a board is exit 2 and writes nothing.
/// </summary>
public sealed partial class BoardPrintOfflineTests : IDisposable
{
    // 4 x 3 squares of 8 mm: the board is 32 x 24 mm, whatever the page around it.
    private const string BoardJson = "{ \"name\": \"desk-test\", \"squaresX\": 4, \"squaresY\": 3, \"squareMm\": 8, \"markerMm\": 6 }";
    private const double BoardWidthMm = 32;
    private const double BoardHeightMm = 24;
    private const double MarginMm = 10;

    private static readonly string NoController = "http://127.0.0.1:" + EndToEnd.RealProcess.FreePort();

    private readonly DirectoryInfo dir = Directory.CreateTempSubdirectory("smp-board-offline-");

    public void Dispose() => dir.Delete(recursive: true);

    private string Path(string name) => System.IO.Path.Combine(dir.FullName, name);

    private string BoardFile(string json = BoardJson)
    {
        var file = Path("board.json");
        File.WriteAllText(file, json);
        return file;
    }

    [Fact]
    public async Task A_local_board_file_is_written_as_a_png_of_its_true_size_without_a_controller()
    {
        const int dpi = 300;
        var png = Path("board.png");
        var (code, stdout, stderr) = await CliRunner.RunAsync("board", "print", BoardFile(), "--png", png, "--dpi", dpi.ToString(CultureInfo.InvariantCulture), "--json", "--controller", NoController);

        Assert.True(code == ExitCodes.Success, stderr);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal("desk-test", (string)json["boardName"]!);
        Assert.Equal(BoardWidthMm, (double)json["boardWidthMm"]!, 9);
        Assert.Equal(BoardHeightMm, (double)json["boardHeightMm"]!, 9);
        Assert.Equal(dpi, (int)json["dpi"]!);
        Assert.False(json.ContainsKey("data"));

        var bytes = await File.ReadAllBytesAsync(png);
        Assert.Equal(bytes.Length, (int)json["bytes"]!);
        // The dpi as recorded in the file's pHYs chunk (read here, not by the code under test).
        Assert.Equal(dpi, PhysDpi(bytes), 1);
        using var image = Cv2.ImDecode(bytes, ImreadModes.Grayscale);
        var pxPerMm = dpi / 25.4;
        Assert.Equal((int)Math.Round((double)json["pageWidthMm"]! * pxPerMm), image.Width);
        Assert.Equal((int)Math.Round((double)json["pageHeightMm"]! * pxPerMm), image.Height);
        Assert.Equal((int)json["widthPx"]!, image.Width);
        Assert.Equal((int)json["heightPx"]!, image.Height);
        Assert.True((double)json["pageWidthMm"]! >= BoardWidthMm + (2 * MarginMm));

        // The board sits at the margin at true scale: its black squares plus the markers' black cells (over half its area), the margin white.
        var board = new Rect((int)Math.Round(MarginMm * pxPerMm), (int)Math.Round(MarginMm * pxPerMm), (int)Math.Round(BoardWidthMm * pxPerMm), (int)Math.Round(BoardHeightMm * pxPerMm));
        using (var inside = new Mat(image, board))
        {
            var black = 1 - (Cv2.CountNonZero(inside.Threshold(128, 255, ThresholdTypes.Binary)) / (double)(board.Width * board.Height));
            Assert.InRange(black, 0.5, 0.9);
        }
        // The top 5 mm: clear of the corner marks, which lie 1..4 mm outside the board.
        using var topMargin = new Mat(image, new Rect(0, 0, image.Width, (int)Math.Round(5 * pxPerMm)));
        Assert.Equal(255, MinOf(topMargin));
    }

    [Fact]
    public async Task A_local_board_file_is_written_as_a_true_scale_pdf_without_a_controller()
    {
        var pdf = Path("board.pdf");
        var (code, stdout, stderr) = await CliRunner.RunAsync("board", "print", BoardFile(), "--pdf", pdf, "--controller", NoController);

        Assert.True(code == ExitCodes.Success, stderr);
        var bytes = await File.ReadAllBytesAsync(pdf);
        var text = Encoding.Latin1.GetString(bytes);
        Assert.StartsWith("%PDF-", text, StringComparison.Ordinal);
        Assert.Contains($"Wrote     {pdf} (PDF, {bytes.Length} bytes)", stdout, StringComparison.Ordinal);
        Assert.Contains("Board     desk-test: DICT_4X4_50, 4 x 3 squares of 8 mm, markers 6 mm", stdout, StringComparison.Ordinal);
        Assert.Contains("Size      board 32 x 24 mm on a ", stdout, StringComparison.Ordinal);
        Assert.Contains("Print     Print the PDF at 100 %", stdout, StringComparison.Ordinal);
        Assert.Contains("Check     Measure the scale bar", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(" px at ", stdout, StringComparison.Ordinal);

        // The page the text reports is the PDF's MediaBox, in points.
        var size = PageSize().Match(stdout);
        Assert.True(size.Success, stdout);
        var box = MediaBox().Match(text);
        Assert.True(box.Success);
        // The text rounds to 0.1 mm (0.28 pt).
        Assert.InRange(Math.Abs((double.Parse(size.Groups[1].Value, CultureInfo.InvariantCulture) * 72 / 25.4) - double.Parse(box.Groups[1].Value, CultureInfo.InvariantCulture)), 0, 0.15);
        Assert.InRange(Math.Abs((double.Parse(size.Groups[2].Value, CultureInfo.InvariantCulture) * 72 / 25.4) - double.Parse(box.Groups[2].Value, CultureInfo.InvariantCulture)), 0, 0.15);
    }

    [Theory]
    [InlineData("{ not json", "not valid")]
    [InlineData("{\"name\":\"x\",\"squaresX\":4,\"squaresY\":3,\"squareMm\":8,\"markerMm\":9}", "markerMm")]
    [InlineData("{\"name\":\"x\",\"dictionary\":\"DICT_LOL\",\"squaresX\":4,\"squaresY\":3,\"squareMm\":8,\"markerMm\":6}", "unknown marker dictionary")]
    [InlineData("null", "empty")]
    public async Task A_board_file_that_is_not_a_board_is_exit_2_and_writes_nothing(string json, string expected)
    {
        var board = BoardFile(json);
        foreach (var (flag, file) in new[] { ("--png", Path("bad.png")), ("--pdf", Path("bad.pdf")) })
        {
            var (code, stdout, stderr) = await CliRunner.RunAsync("board", "print", board, flag, file, "--controller", NoController);
            Assert.Equal(ExitCodes.Usage, code);
            Assert.Contains($"cannot print board file {board}: ", stderr, StringComparison.Ordinal);
            Assert.Contains(expected, stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("cannot reach the controller", stderr, StringComparison.Ordinal);
            Assert.Equal("", stdout);
            Assert.False(File.Exists(file));
        }
    }

    [Fact]
    public async Task A_dpi_out_of_range_for_a_local_board_is_exit_2_with_the_range_and_writes_nothing()
    {
        var png = Path("b.png");
        var (code, _, stderr) = await CliRunner.RunAsync("board", "print", BoardFile(), "--png", png, "--dpi", "5000", "--controller", NoController);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("150..2400", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(png));
    }

    [Fact]
    public async Task A_board_path_that_does_not_exist_is_exit_2_without_asking_a_controller()
    {
        var missing = Path("no-such-board.json");
        var (code, _, stderr) = await CliRunner.RunAsync("board", "print", missing, "--pdf", Path("x.pdf"), "--controller", NoController);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains($"board file {missing} does not exist", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path("x.pdf")));
    }

    [Fact]
    public async Task A_bare_board_name_still_asks_the_controller()
    {
        var pdf = Path("named.pdf");
        var (code, _, stderr) = await CliRunner.RunAsync("board", "print", "head-charuco-5x4", "--pdf", pdf, "--controller", NoController);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("cannot reach the controller", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(pdf));
    }

    private static double MinOf(Mat image)
    {
        Cv2.MinMaxLoc(image, out double min, out _);
        return min;
    }

    /// <summary>Dots per inch of a PNG's pHYs chunk (unit 1 = pixels per metre; x and y equal here).</summary>
    private static double PhysDpi(byte[] png)
    {
        var offset = 8; // signature
        while (offset + 8 <= png.Length)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(offset));
            var type = Encoding.ASCII.GetString(png, offset + 4, 4);
            if (type == "pHYs")
            {
                var data = png.AsSpan(offset + 8, length);
                var x = BinaryPrimitives.ReadUInt32BigEndian(data);
                var y = BinaryPrimitives.ReadUInt32BigEndian(data[4..]);
                Assert.Equal(1, data[8]);
                Assert.Equal(x, y);
                return x * 0.0254;
            }
            offset += 12 + length;
        }
        throw new Xunit.Sdk.XunitException("the PNG has no pHYs chunk");
    }

    [GeneratedRegex(@"Size      board [\d.]+ x [\d.]+ mm on a ([\d.]+) x ([\d.]+) mm page")]
    private static partial Regex PageSize();

    [GeneratedRegex(@"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]")]
    private static partial Regex MediaBox();
}
