using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using OpenCvSharp;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Camera;

/// <summary>Printable boards: the PDF's structure and scale, the PNG's size, dpi and content.</summary>
public sealed partial class BoardPrintTests
{
    private const double PtPerMm = 72 / 25.4;

    internal static string BoardsDirectory => Path.Combine(TestProfiles.RepoRoot, "hardware", "boards");

    [Fact]
    public void Pdf_is_a_well_formed_file_whose_xref_offsets_point_at_their_objects()
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        var pdf = BoardPdf.Write(BoardPage.For(board));
        var text = Encoding.Latin1.GetString(pdf);

        Assert.StartsWith("%PDF-1.", text, StringComparison.Ordinal);
        Assert.EndsWith("%%EOF\n", text, StringComparison.Ordinal);
        var startxref = int.Parse(StartXref().Match(text).Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.StartsWith("xref\n0 ", text[startxref..], StringComparison.Ordinal);

        var header = XrefHeader().Match(text, startxref);
        Assert.True(header.Success);
        var count = int.Parse(header.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(count >= 6, "catalog, pages, page, contents, font, info");
        var entries = header.Index + header.Length;
        for (var i = 0; i < count; i++)
        {
            var entry = text.Substring(entries + (i * 20), 20);
            Assert.Matches(@"^\d{10} \d{5} [nf] \n$", entry);
            if (i == 0) continue;
            var offset = int.Parse(entry[..10], CultureInfo.InvariantCulture);
            Assert.StartsWith($"{i} 0 obj\n", text[offset..], StringComparison.Ordinal);
        }
        Assert.Contains($"/Size {count} /Root 1 0 R", text, StringComparison.Ordinal);

        // The content stream's /Length is its byte count.
        var stream = ContentStream().Match(text);
        Assert.True(stream.Success);
        Assert.Equal(int.Parse(stream.Groups[1].Value, CultureInfo.InvariantCulture), stream.Groups[2].Value.Length);
        Assert.Equal(pdf, BoardPdf.Write(BoardPage.For(board))); // deterministic
    }

    [Fact]
    public void Pdf_page_is_board_plus_margins_in_points_and_the_board_is_drawn_at_true_scale()
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        var page = BoardPage.For(board);
        var text = Encoding.Latin1.GetString(BoardPdf.Write(page));

        // MediaBox = page size in points (mm × 72 / 25.4); the page holds the board, the margins, the bar and the caption.
        var box = MediaBox().Match(text);
        var widthPt = double.Parse(box.Groups[1].Value, CultureInfo.InvariantCulture);
        var heightPt = double.Parse(box.Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.Equal(page.PageWidthMm * PtPerMm, widthPt, 3);
        Assert.Equal(page.PageHeightMm * PtPerMm, heightPt, 3);
        Assert.True(page.PageWidthMm >= board.WidthMm + (2 * BoardPage.MarginMm) - 1e-9);
        Assert.True(page.PageHeightMm >= board.HeightMm + (2 * BoardPage.MarginMm) + 5);

        // Rectangles back in mm from the top-left corner.
        var rects = ParseRects(text, heightPt);
        // Numbers carry 4 decimals of a point: 1e-3 mm is ample tolerance.
        var boardRects = rects.Where(r => r.XMm >= BoardPage.MarginMm - 1e-3 && r.XMm < BoardPage.MarginMm + board.WidthMm - 1e-3
                                          && r.YMm >= BoardPage.MarginMm - 1e-3 && r.YMm + r.HeightMm <= BoardPage.MarginMm + board.HeightMm + 1e-3).ToList();
        // The black squares reach every edge of a 5 x 4 board: their extent is the board, 30 x 24 mm.
        Assert.Equal(BoardPage.MarginMm, boardRects.Min(r => r.XMm), 3);
        Assert.Equal(BoardPage.MarginMm, boardRects.Min(r => r.YMm), 3);
        Assert.Equal(BoardPage.MarginMm + 30, boardRects.Max(r => r.XMm + r.WidthMm), 3);
        Assert.Equal(BoardPage.MarginMm + 24, boardRects.Max(r => r.YMm + r.HeightMm), 3);
        Assert.Equal(10, boardRects.Count(r => Math.Abs(r.WidthMm - 6) < 1e-3 && Math.Abs(r.HeightMm - 6) < 1e-3)); // 10 black squares

        // The scale bar: one 0.8 mm high bar of exactly ScaleBarMm (30 mm for a 30 mm board).
        Assert.Equal(30, page.ScaleBarMm);
        var bar = Assert.Single(rects, r => Math.Abs(r.HeightMm - 0.8) < 1e-3);
        Assert.Equal(30, bar.WidthMm, 3);

        // Drawn as OpenCV draws the board: rasterising the PDF's board rectangles gives Render's picture
        // (at 40 px/mm every edge of this board falls on a whole pixel, so OpenCV rounds nothing).
        const double pxPerMm = 40;
        using var expected = board.Render(pxPerMm);
        using var drawn = new Mat(expected.Size(), MatType.CV_8UC1, Scalar.All(255));
        foreach (var r in boardRects)
        {
            var x0 = (int)Math.Round((r.XMm - BoardPage.MarginMm) * pxPerMm);
            var y0 = (int)Math.Round((r.YMm - BoardPage.MarginMm) * pxPerMm);
            var x1 = (int)Math.Round((r.XMm + r.WidthMm - BoardPage.MarginMm) * pxPerMm);
            var y1 = (int)Math.Round((r.YMm + r.HeightMm - BoardPage.MarginMm) * pxPerMm);
            Cv2.Rectangle(drawn, new Rect(x0, y0, x1 - x0, y1 - y0), Scalar.All(0), -1);
        }
        Assert.True(DifferingFraction(expected, drawn) < 0.001, $"{DifferingFraction(expected, drawn):P2} of the pixels differ from OpenCV's board");
        // The caption, with PDF's string escapes for the parentheses.
        Assert.Contains(@"(Print at 100 % \(actual size\), fit-to-page off.) Tj", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(300)]
    [InlineData(600)]
    public void Png_is_dpi_times_the_page_size_records_its_dpi_and_holds_OpenCVs_board(int dpi)
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        var page = BoardPage.For(board);
        var png = page.ToPng(dpi, out var size);

        var pxPerMm = dpi / 25.4;
        Assert.Equal((int)Math.Round(page.PageWidthMm * pxPerMm), size.Width);
        Assert.Equal((int)Math.Round(page.PageHeightMm * pxPerMm), size.Height);
        Assert.Equal(size, PngImages.SizeOf(png));
        Assert.Equal(dpi, PngImages.ReadDpi(png)!.Value, 0); // pixels per metre, rounded: within 0.01 dpi

        using var image = Cv2.ImDecode(png, ImreadModes.Grayscale);
        Assert.Equal(size, image.Size());
        using var expected = board.Render(pxPerMm);
        Assert.Equal((int)Math.Round(30 * pxPerMm), expected.Width);
        var origin = (int)Math.Round(BoardPage.MarginMm * pxPerMm);
        using var region = new Mat(image, new Rect(origin, origin, expected.Width, expected.Height));
        Assert.Equal(0.0, DifferingFraction(expected, region));

        // The bar's row: one black run of ScaleBarMm at this dpi (±1 px).
        var barRow = (int)Math.Round((page.ScaleBarTopMm + 2.5 - 0.4) * pxPerMm);
        var black = Enumerable.Range(0, image.Width).Where(x => image.At<byte>(barRow, x) < 128).ToList();
        Assert.Equal(page.ScaleBarMm * pxPerMm, black.Count, 1.0);
        Assert.Equal(black.Count, black[^1] - black[0] + 1); // one run
    }

    [Theory]
    [InlineData(100)]
    [InlineData(2401)]
    public void Png_refuses_a_dpi_out_of_range(int dpi)
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        Assert.Throws<ArgumentOutOfRangeException>(() => BoardPage.For(board).ToPng(dpi, out _));
    }

    [Fact]
    public void Png_refuses_a_page_too_large_for_the_dpi()
    {
        using var board = new MarkerBoard(new MarkerBoardSpec { Name = "big", SquaresX = 10, SquaresY = 7, SquareMm = 40, MarkerMm = 30 });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => BoardPage.For(board).ToPng(2400, out _));
        Assert.Contains("lower dpi", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Boards_load_by_plain_name_only_and_unknown_names_list_the_available_boards()
    {
        using (var board = BoardFiles.Load(BoardsDirectory, "head-charuco-5x4.json")) Assert.Equal("head-charuco-5x4", board.Spec.Name);
        Assert.Contains("head-charuco-5x4", BoardFiles.Available(BoardsDirectory));
        foreach (var name in new[] { "nope", "../profiles/sim", "/etc/passwd", "", ".hidden" })
        {
            var e = Assert.Throws<ArgumentException>(() => BoardFiles.Load(BoardsDirectory, name));
            Assert.Contains("available boards: ", e.Message, StringComparison.Ordinal);
            Assert.Contains("head-charuco-5x4", e.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("null")]
    [InlineData("{\"name\":\"x\",\"squaresX\":5,\"squaresY\":4,\"squareMm\":6,\"markerMm\":7}")]
    [InlineData("{\"name\":\"x\",\"squaresX\":\"five\"}")]
    public void Board_text_that_is_not_a_board_is_refused(string json) =>
        Assert.ThrowsAny<ArgumentException>(() => BoardPage.ParseBoard(json));

    [Fact]
    public void Board_text_with_comments_and_trailing_commas_parses_like_a_board_file()
    {
        using var board = BoardPage.ParseBoard(File.ReadAllText(Path.Combine(BoardsDirectory, "head-charuco-5x4.json")));
        Assert.Equal(30, board.WidthMm, 9);
        Assert.Equal(10, board.MarkerCount);
    }

    [Fact]
    public void FitWithin_halves_a_picture_until_it_fits()
    {
        // Noise does not compress: 640 x 480 of it is about 900 KiB as PNG.
        using var noise = new Mat(480, 640, MatType.CV_8UC3);
        Cv2.Randu(noise, Scalar.All(0), Scalar.All(256));
        var png = noise.ImEncode(".png");
        Assert.Same(png, PngImages.FitWithin(png, png.Length, out var same));
        Assert.False(same);

        var fitted = PngImages.FitWithin(png, png.Length / 3, out var downscaled);
        Assert.True(downscaled);
        Assert.True(fitted.Length <= png.Length / 3);
        Assert.Equal(new Size(320, 240), PngImages.SizeOf(fitted)); // a quarter of the pixels is enough
    }

    private static double DifferingFraction(Mat a, Mat b)
    {
        using var diff = new Mat();
        Cv2.Absdiff(a, b, diff);
        using var mask = new Mat();
        Cv2.Threshold(diff, mask, 127, 255, ThresholdTypes.Binary);
        return Cv2.CountNonZero(mask) / (double)(a.Width * a.Height);
    }

    private static List<PageRect> ParseRects(string pdf, double pageHeightPt)
    {
        var rects = new List<PageRect>();
        foreach (Match m in RectOp().Matches(pdf))
        {
            var v = Enumerable.Range(1, 4).Select(i => double.Parse(m.Groups[i].Value, CultureInfo.InvariantCulture) / PtPerMm).ToArray();
            rects.Add(new PageRect(v[0], (pageHeightPt / PtPerMm) - v[1] - v[3], v[2], v[3]));
        }
        return rects;
    }

    [GeneratedRegex(@"startxref\n(\d+)\n%%EOF\n$")]
    private static partial Regex StartXref();

    [GeneratedRegex(@"\Gxref\n0 (\d+)\n")]
    private static partial Regex XrefHeader();

    [GeneratedRegex(@"<< /Length (\d+) >>\nstream\n(.*?)\nendstream", RegexOptions.Singleline)]
    private static partial Regex ContentStream();

    [GeneratedRegex(@"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]")]
    private static partial Regex MediaBox();

    [GeneratedRegex(@"(-?[\d.]+) (-?[\d.]+) ([\d.]+) ([\d.]+) re f")]
    private static partial Regex RectOp();
}
