using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using OpenCvSharp;

namespace SmpRobot.Vision;

/// <summary>A filled black rectangle on a printed page: mm from the page's top-left corner, y down.</summary>
public readonly record struct PageRect(double XMm, double YMm, double WidthMm, double HeightMm);

/// <summary>
/// A marker board laid out as a printable page at true scale: the board (black squares and marker
/// cells as rectangles), corner marks just outside it, a scale bar of known length under it and a
/// caption saying how to print and check it. All lengths in mm from the page's top-left corner,
/// y down. The same layout feeds the PNG (<see cref="ToPng"/>) and the PDF (<see cref="BoardPdf"/>).
/// </summary>
public sealed class BoardPage
{
    /// <summary>White margin around everything, mm (printers cannot print to the paper's edge).</summary>
    public const double MarginMm = 10;

    /// <summary>Caption font size, points (1 pt = 25.4/72 mm).</summary>
    public const double CaptionFontPt = 6;

    /// <summary>Smallest PNG resolution accepted, dots per inch (below it a marker cell is a few dots).</summary>
    public const int MinDpi = 150;

    /// <summary>Largest PNG resolution accepted, dots per inch.</summary>
    public const int MaxDpi = 2400;

    /// <summary>Largest PNG side, px (as <see cref="MarkerBoard.Render"/>).</summary>
    public const int MaxSidePx = 20000;

    private const double GapBelowBoardMm = 6;
    private const double ScaleBarHeightMm = 2.5;
    private const double ScaleBarThicknessMm = 0.8;
    private const double TickWidthMm = 0.25;
    private const double GapBelowBarMm = 3;
    private const double CornerMarkOffsetMm = 1;
    private const double CornerMarkLengthMm = 3;
    private const double CornerMarkThicknessMm = 0.15;

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        NumberHandling = JsonNumberHandling.Strict,
    };

    private BoardPage(MarkerBoard board)
    {
        Board = board;
        var spec = board.Spec;
        BoardWidthMm = board.WidthMm;
        BoardHeightMm = board.HeightMm;
        ScaleBarMm = Math.Clamp(Math.Floor(BoardWidthMm / 10) * 10, 10, 100);
        Description = FormattableString.Invariant($"{spec.Dictionary}, {spec.SquaresX} x {spec.SquaresY} squares of {Mm(spec.SquareMm)} mm, markers {Mm(spec.MarkerMm)} mm");
        Caption =
        [
            $"{spec.Name}: {Description}",
            $"Board {Mm(BoardWidthMm)} x {Mm(BoardHeightMm)} mm (inside the corner marks). Scale bar {Mm(ScaleBarMm)} mm.",
            "Print at 100 % (actual size), fit-to-page off.",
            $"Check: the bar must measure {Mm(ScaleBarMm)} mm, a square {Mm(spec.SquareMm)} mm.",
        ];
        CaptionLineMm = CaptionFontPt * 1.4 * 25.4 / 72;
        var captionWidthMm = Caption.Max(EstimateTextWidthMm);
        PageWidthMm = (2 * MarginMm) + Math.Max(Math.Max(BoardWidthMm, ScaleBarMm), captionWidthMm);
        BoardLeftMm = MarginMm;
        BoardTopMm = MarginMm;
        ScaleBarLeftMm = MarginMm;
        ScaleBarTopMm = BoardTopMm + BoardHeightMm + GapBelowBoardMm;
        CaptionTopMm = ScaleBarTopMm + ScaleBarHeightMm + GapBelowBarMm;
        PageHeightMm = CaptionTopMm + (Caption.Count * CaptionLineMm) + MarginMm;
        BoardRects = ExtractBoardRects(board, BoardLeftMm, BoardTopMm);
        MarkRects = [.. ScaleBar(), .. CornerMarks()];
    }

    /// <summary>The board drawn (not owned: the caller keeps disposing it).</summary>
    public MarkerBoard Board { get; }

    /// <summary>The board's printed size (its outer squares), mm.</summary>
    public double BoardWidthMm { get; }

    /// <summary>The board's printed height, mm.</summary>
    public double BoardHeightMm { get; }

    /// <summary>Top-left corner of the board on the page, mm.</summary>
    public double BoardLeftMm { get; }

    /// <summary>Top edge of the board on the page, mm.</summary>
    public double BoardTopMm { get; }

    /// <summary>The whole page, mm.</summary>
    public double PageWidthMm { get; }

    /// <summary>The whole page's height, mm.</summary>
    public double PageHeightMm { get; }

    /// <summary>Length of the scale bar, outer end to outer end, mm: the board width rounded down to 10 mm, 10..100.</summary>
    public double ScaleBarMm { get; }

    /// <summary>Left end of the scale bar, mm.</summary>
    public double ScaleBarLeftMm { get; }

    /// <summary>Top of the scale bar's ticks, mm.</summary>
    public double ScaleBarTopMm { get; }

    /// <summary>"DICT_4X4_50, 5 x 4 squares of 6 mm, markers 4.5 mm".</summary>
    public string Description { get; }

    /// <summary>Caption lines (ASCII), printed under the scale bar.</summary>
    public IReadOnlyList<string> Caption { get; }

    /// <summary>Top of the caption's first line box, mm.</summary>
    public double CaptionTopMm { get; }

    /// <summary>Caption line pitch, mm.</summary>
    public double CaptionLineMm { get; }

    /// <summary>The board's black parts: black squares and black marker cells (runs of cells merged per row).</summary>
    public IReadOnlyList<PageRect> BoardRects { get; }

    /// <summary>Scale bar (bar and a tick every 10 mm, the end ticks flush with its ends) and the corner marks.</summary>
    public IReadOnlyList<PageRect> MarkRects { get; }

    /// <summary>Lays out <paramref name="board"/> on a page.</summary>
    public static BoardPage For(MarkerBoard board)
    {
        ArgumentNullException.ThrowIfNull(board);
        return new BoardPage(board);
    }

    /// <summary>
    /// Parses a board file's JSON text (the hardware/boards/*.json format: comments and trailing
    /// commas allowed) and builds the board. Throws ArgumentException (JsonException included)
    /// when it is not a usable board.
    /// </summary>
    public static MarkerBoard ParseBoard(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        MarkerBoardSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize<MarkerBoardSpec>(json, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"board JSON is not valid: {e.Message}", e);
        }
        return new MarkerBoard(spec ?? throw new ArgumentException("board JSON is empty (null)"));
    }

    /// <summary>
    /// How to print at true scale, for a PNG (<paramref name="dpi"/> &gt; 0) or the PDF (<paramref name="dpi"/> = 0).
    /// </summary>
    public string PrintNote(int dpi) => dpi > 0
        ? FormattableString.Invariant($"The PNG records {dpi} dpi, so its {PixelSide(PageWidthMm, dpi)} x {PixelSide(PageHeightMm, dpi)} px are {Mm(PageWidthMm)} x {Mm(PageHeightMm)} mm. Print it at 100 % (\"actual size\") with fit-to-page off; a viewer that ignores the dpi prints it at the wrong size, so prefer the PDF.")
        : FormattableString.Invariant($"Print the PDF at 100 % (\"actual size\"), with \"fit to page\" and \"shrink oversized pages\" off. The page is {Mm(PageWidthMm)} x {Mm(PageHeightMm)} mm; any larger paper works.");

    /// <summary>How to check a print with a ruler or calipers.</summary>
    public string MeasureHint => FormattableString.Invariant(
        $"Measure the scale bar under the board with a ruler or calipers: it must be {Mm(ScaleBarMm)} mm from end to end, and one board square {Mm(Board.Spec.SquareMm)} mm. If not, the printer scaled the page: fix its settings and print again (the pose is only as true as the print).");

    /// <summary>Pixel count of <paramref name="mm"/> at <paramref name="dpi"/>: round(mm × dpi / 25.4).</summary>
    public static int PixelSide(double mm, double dpi) => (int)Math.Round(mm * dpi / 25.4);

    /// <summary>
    /// The page as an 8-bit grey PNG at <paramref name="dpi"/> (<see cref="MinDpi"/>..<see cref="MaxDpi"/>),
    /// each side round(mm × dpi / 25.4) px, the dpi recorded in a pHYs chunk. The board itself is
    /// OpenCV's own rendering (<see cref="MarkerBoard.Render"/>) placed at the board's corner.
    /// Throws ArgumentOutOfRangeException for a dpi out of range or a page above <see cref="MaxSidePx"/>.
    /// </summary>
    public byte[] ToPng(int dpi, out Size sizePx)
    {
        if (dpi is < MinDpi or > MaxDpi) throw new ArgumentOutOfRangeException(nameof(dpi), FormattableString.Invariant($"dpi must be {MinDpi}..{MaxDpi}, not {dpi}"));
        var pxPerMm = dpi / 25.4;
        sizePx = new Size(PixelSide(PageWidthMm, dpi), PixelSide(PageHeightMm, dpi));
        if (sizePx.Width > MaxSidePx || sizePx.Height > MaxSidePx)
        {
            throw new ArgumentOutOfRangeException(nameof(dpi), FormattableString.Invariant($"at {dpi} dpi the page would be {sizePx.Width} x {sizePx.Height} px (at most {MaxSidePx} per side): use a lower dpi or the PDF"));
        }
        using var page = new Mat(sizePx, MatType.CV_8UC1, Scalar.All(255));
        using (var board = Board.Render(pxPerMm))
        {
            var left = (int)Math.Round(BoardLeftMm * pxPerMm);
            var top = (int)Math.Round(BoardTopMm * pxPerMm);
            using var target = new Mat(page, new Rect(left, top, board.Width, board.Height));
            board.CopyTo(target);
        }
        foreach (var r in MarkRects)
        {
            // Edges rounded independently, so abutting rectangles meet and lengths stay true to ±½ px.
            int x0 = (int)Math.Round(r.XMm * pxPerMm), y0 = (int)Math.Round(r.YMm * pxPerMm);
            int x1 = (int)Math.Round((r.XMm + r.WidthMm) * pxPerMm), y1 = (int)Math.Round((r.YMm + r.HeightMm) * pxPerMm);
            Cv2.Rectangle(page, new Rect(x0, y0, Math.Max(1, x1 - x0), Math.Max(1, y1 - y0)), Scalar.All(0), -1);
        }
        DrawCaption(page, pxPerMm);
        var png = page.ImEncode(".png", new ImageEncodingParam(ImwriteFlags.PngCompression, 9));
        return PngImages.WithDpi(png, dpi);
    }

    private void DrawCaption(Mat page, double pxPerMm)
    {
        // Hershey fonts are stroke fonts: scale so the capital height matches the PDF's caption
        // (about 0.7 em), then shrink if the widest line would leave the text box.
        var capHeightPx = CaptionFontPt * 0.7 * 25.4 / 72 * pxPerMm;
        var boxWidthPx = (PageWidthMm - (2 * MarginMm)) * pxPerMm;
        var probe = Cv2.GetTextSize("H", HersheyFonts.HersheySimplex, 1.0, 1, out _);
        var scale = capHeightPx / probe.Height;
        var widest = Caption.Max(line => Cv2.GetTextSize(line, HersheyFonts.HersheySimplex, scale, 1, out _).Width);
        if (widest > boxWidthPx) scale *= boxWidthPx / widest;
        var thickness = Math.Max(1, (int)Math.Round(scale * 1.2));
        for (var i = 0; i < Caption.Count; i++)
        {
            var baselineMm = CaptionTopMm + ((i + 0.75) * CaptionLineMm);
            Cv2.PutText(page, Caption[i], new Point((int)Math.Round(MarginMm * pxPerMm), (int)Math.Round(baselineMm * pxPerMm)), HersheyFonts.HersheySimplex, scale, Scalar.All(0), thickness, LineTypes.AntiAlias);
        }
    }

    private IEnumerable<PageRect> ScaleBar()
    {
        var x0 = ScaleBarLeftMm;
        var y0 = ScaleBarTopMm;
        yield return new PageRect(x0, y0 + ScaleBarHeightMm - ScaleBarThicknessMm, ScaleBarMm, ScaleBarThicknessMm);
        var ticks = (int)Math.Round(ScaleBarMm / 10);
        for (var k = 0; k <= ticks; k++)
        {
            // The end ticks lie inside the bar so its outer ends are exactly ScaleBarMm apart.
            var x = k == 0 ? x0 : k == ticks ? x0 + ScaleBarMm - TickWidthMm : x0 + (k * 10) - (TickWidthMm / 2);
            yield return new PageRect(x, y0, TickWidthMm, ScaleBarHeightMm);
        }
    }

    private IEnumerable<PageRect> CornerMarks()
    {
        // L-shaped marks outside each corner, on the lines of the board's edges: they show (and let
        // you cut along) the board's extent, which white edge squares would otherwise hide.
        double l = BoardLeftMm, t = BoardTopMm, r = BoardLeftMm + BoardWidthMm, b = BoardTopMm + BoardHeightMm;
        const double o = CornerMarkOffsetMm, n = CornerMarkLengthMm, w = CornerMarkThicknessMm;
        // Horizontal marks (along the top and bottom edges), outside left and right.
        yield return new PageRect(l - o - n, t, n, w);
        yield return new PageRect(r + o, t, n, w);
        yield return new PageRect(l - o - n, b - w, n, w);
        yield return new PageRect(r + o, b - w, n, w);
        // Vertical marks (along the left and right edges), outside top and bottom.
        yield return new PageRect(l, t - o - n, w, n);
        yield return new PageRect(r - w, t - o - n, w, n);
        yield return new PageRect(l, b + o, w, n);
        yield return new PageRect(r - w, b + o, w, n);
    }

    /// <summary>
    /// The board's black parts as rectangles, read back from OpenCV's own rendering (so the layout,
    /// including which squares are black, is OpenCV's, whatever its version): each square's colour
    /// from a point in the gap between its edge and its marker, each marker cell's from its centre.
    /// </summary>
    private static List<PageRect> ExtractBoardRects(MarkerBoard board, double leftMm, double topMm)
    {
        var spec = board.Spec;
        var gapMm = (spec.SquareMm - spec.MarkerMm) / 2;
        var bits = board.Dictionary.MarkerSize + 2; // data bits plus a one-cell black border each side
        var cellMm = spec.MarkerMm / bits;
        // Enough pixels that the gap and a marker cell are several pixels wide, within Render's limit.
        var pxPerMm = Math.Max(20, Math.Max(8 / gapMm, 8 / cellMm));
        pxPerMm = Math.Min(pxPerMm, (MaxSidePx - 1) / Math.Max(board.WidthMm, board.HeightMm));
        using var image = board.Render(pxPerMm);
        bool Black(double xMm, double yMm)
        {
            var x = Math.Clamp((int)Math.Floor(xMm * pxPerMm), 0, image.Width - 1);
            var y = Math.Clamp((int)Math.Floor(yMm * pxPerMm), 0, image.Height - 1);
            return image.At<byte>(y, x) < 128;
        }

        var rects = new List<PageRect>();
        for (var row = 0; row < spec.SquaresY; row++)
        {
            for (var col = 0; col < spec.SquaresX; col++)
            {
                double sx = col * spec.SquareMm, sy = row * spec.SquareMm;
                if (Black(sx + (gapMm / 2), sy + (gapMm / 2)))
                {
                    rects.Add(new PageRect(leftMm + sx, topMm + sy, spec.SquareMm, spec.SquareMm));
                    continue;
                }
                double mx = sx + gapMm, my = sy + gapMm;
                for (var cy = 0; cy < bits; cy++)
                {
                    var runStart = -1;
                    for (var cx = 0; cx <= bits; cx++)
                    {
                        var black = cx < bits && Black(mx + ((cx + 0.5) * cellMm), my + ((cy + 0.5) * cellMm));
                        if (black && runStart < 0) runStart = cx;
                        if (!black && runStart >= 0)
                        {
                            rects.Add(new PageRect(leftMm + mx + (runStart * cellMm), topMm + my + (cy * cellMm), (cx - runStart) * cellMm, cellMm));
                            runStart = -1;
                        }
                    }
                }
            }
        }
        return rects;
    }

    /// <summary>Helvetica-ish width of a caption line at <see cref="CaptionFontPt"/>, mm (a little generous).</summary>
    private static double EstimateTextWidthMm(string line)
    {
        var em = 0.0;
        foreach (var c in line) em += c == ' ' ? 0.28 : char.IsUpper(c) || char.IsDigit(c) ? 0.62 : c is '.' or ',' or ':' or 'i' or 'l' or '(' or ')' ? 0.3 : 0.54;
        return em * CaptionFontPt * 25.4 / 72;
    }

    private static string Mm(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}

/// <summary>The boards of a hardware/boards/ folder, by name.</summary>
public static class BoardFiles
{
    /// <summary>Board names (file names without ".json"), sorted; empty when the folder does not exist.</summary>
    public static IReadOnlyList<string> Available(string boardsDirectory)
    {
        if (!Directory.Exists(boardsDirectory)) return [];
        return [.. Directory.EnumerateFiles(boardsDirectory, "*.json").Select(f => Path.GetFileNameWithoutExtension(f)).Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// Loads board <paramref name="name"/> ("head-charuco-5x4", ".json" optional) from
    /// <paramref name="boardsDirectory"/>. Only plain names are accepted (letters, digits, '-', '_',
    /// '.'; no path), so a request can never read outside the folder. Throws ArgumentException for
    /// a bad or unknown name (listing the available boards) or a board file that is not valid.
    /// </summary>
    public static MarkerBoard Load(string boardsDirectory, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var bare = name.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? name[..^5] : name;
        var plain = bare.Length is > 0 and <= 100 && bare[0] != '.' && bare.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
        if (!plain || !File.Exists(Path.Combine(boardsDirectory, bare + ".json")))
        {
            throw new ArgumentException($"unknown board '{name}': {AvailableText(boardsDirectory)}");
        }
        try
        {
            return MarkerBoard.Load(Path.Combine(boardsDirectory, bare + ".json"));
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"board file {bare}.json is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>"available boards: a, b" (or why there are none).</summary>
    public static string AvailableText(string boardsDirectory)
    {
        var names = Available(boardsDirectory);
        return names.Count == 0 ? $"no boards in {boardsDirectory}" : "available boards: " + string.Join(", ", names);
    }
}
