using System.Globalization;
using PdfSharp;
using PdfSharp.Drawing;
using PdfSharp.Pdf;

namespace SmpRobot.Treatment.Reports;

/// <summary>
/// Text, tables and pictures flowing down A4 pages (PDFsharp has no layout engine of its own without MigraDoc,
/// which is not served here): a cursor that opens a new page when the next block does not fit, tables that repeat
/// their header on every page they run onto, and the header and footer drawn last, once the page count is known.
/// Units are points (1/72 in) from the page's top left.
/// </summary>
internal sealed class PdfFlow : IDisposable
{
    private const double Margin = 50, Top = 72, BottomSpace = 62;
    private const double BodySize = 9.5, SmallSize = 8.5;

    private readonly PdfDocument _doc;
    private readonly List<XImage> _images = [];
    private readonly List<System.Text.StringBuilder> _pageText = [];
    private XGraphics? _gfx;
    private string? _pendingHeading;

    public PdfFlow(PdfDocument doc)
    {
        _doc = doc;
        Body = new XFont(ReportFonts.Family, BodySize, XFontStyleEx.Regular);
        BodyBold = new XFont(ReportFonts.Family, BodySize, XFontStyleEx.Bold);
        Small = new XFont(ReportFonts.Family, SmallSize, XFontStyleEx.Regular);
        SmallBold = new XFont(ReportFonts.Family, SmallSize, XFontStyleEx.Bold);
        H1 = new XFont(ReportFonts.Family, 16, XFontStyleEx.Bold);
        H2 = new XFont(ReportFonts.Family, 12, XFontStyleEx.Bold);
        NewPage();
    }

    public XFont Body { get; }

    public XFont BodyBold { get; }

    public XFont Small { get; }

    public XFont SmallBold { get; }

    public XFont H1 { get; }

    public XFont H2 { get; }

    /// <summary>The cursor: where the next block starts.</summary>
    public double Y { get; private set; }

    public static double Left => Margin;

    public static double ContentWidth => PageWidth - (2 * Margin);

    private static double PageWidth => XUnit.FromMillimeter(210).Point;

    private static double PageHeight => XUnit.FromMillimeter(297).Point;

    private static double Bottom => PageHeight - BottomSpace;

    private XGraphics Gfx => _gfx ?? throw new InvalidOperationException("the flow is finished");

    /// <summary>Starts a new page; the cursor goes to its top.</summary>
    public void NewPage()
    {
        _gfx?.Dispose();
        var page = _doc.AddPage();
        page.Size = PageSize.A4;
        _gfx = XGraphics.FromPdfPage(page);
        _pageText.Add(new System.Text.StringBuilder());
        Y = Top;
    }

    /// <summary>
    /// Starts a new page unless <paramref name="height"/> points fit below the cursor, with a pending heading above
    /// them; then draws that heading. Every block calls this before it draws, so a heading is never left alone at
    /// the foot of a page, and it moves only as far as the block that follows it needs.
    /// </summary>
    public void EnsureSpace(double height)
    {
        const double HeadingHeight = 32;
        // Nothing to place: no page break either (a flow ending just past the bottom must not leave an empty page).
        if (_pendingHeading is null && height <= 0) return;
        if (_pendingHeading is not null) height += HeadingHeight;
        if (Y + height > Bottom && Y > Top) NewPage();
        if (_pendingHeading is not { } text) return;
        _pendingHeading = null;
        if (Y > Top) Y += 8;
        Draw(text, H2, XBrushes.Black, new XPoint(Left, Y + 12));
        Y += 16;
        Gfx.DrawLine(new XPen(XColor.FromArgb(160, 160, 160), 0.6), Left, Y, Left + ContentWidth, Y);
        Y += 8;
    }

    /// <summary>A section's title, drawn with the first line, row or picture of what follows (see <see cref="EnsureSpace"/>).</summary>
    public void Heading(string text)
    {
        EnsureSpace(0);
        _pendingHeading = text;
    }

    /// <summary>The document's big title at the cursor.</summary>
    public void Title(string text, string subtitle)
    {
        EnsureSpace(60);
        Draw(text, H1, XBrushes.Black, new XPoint(Left, Y + 16));
        Y += 24;
        foreach (var line in Wrap(subtitle, Body, ContentWidth))
        {
            Draw(line, Body, XBrushes.DimGray, new XPoint(Left, Y + 10));
            Y += 13;
        }
        Y += 6;
    }

    /// <summary>A paragraph, wrapped to the text width.</summary>
    public void Paragraph(string text, bool small = false, XBrush? brush = null)
    {
        var font = small ? Small : Body;
        var lineH = font.Size * 1.35;
        foreach (var line in Wrap(text, font, ContentWidth))
        {
            EnsureSpace(lineH);
            Draw(line, font, brush ?? XBrushes.Black, new XPoint(Left, Y + font.Size));
            Y += lineH;
        }
        Y += 4;
    }

    /// <summary>Label/value pairs in two columns, the label bold; values wrap.</summary>
    public void KeyValues(IEnumerable<(string Key, string Value)> pairs, double keyWidth = 130)
    {
        var lineH = BodySize * 1.35;
        foreach (var (key, value) in pairs)
        {
            var lines = Wrap(value, Body, ContentWidth - keyWidth);
            EnsureSpace(lineH * lines.Count);
            Draw(key, BodyBold, XBrushes.Black, new XPoint(Left, Y + BodySize));
            foreach (var line in lines)
            {
                Draw(line, Body, XBrushes.Black, new XPoint(Left + keyWidth, Y + BodySize));
                Y += lineH;
            }
        }
        Y += 4;
    }

    /// <summary>
    /// A table at the text width: <paramref name="widths"/> are the columns' shares, cells wrap, rows never split,
    /// and the header is drawn again at the top of every page the table runs onto.
    /// </summary>
    public void Table(IReadOnlyList<string> headers, IReadOnlyList<double> widths, IEnumerable<IReadOnlyList<string>> rows)
    {
        var total = widths.Sum();
        var cols = widths.Select(w => w / total * ContentWidth).ToArray();
        const double Pad = 3;
        var lineH = SmallSize * 1.3;
        var shade = new XSolidBrush(XColor.FromArgb(242, 242, 242));
        var headShade = new XSolidBrush(XColor.FromArgb(220, 226, 236));
        var rule = new XPen(XColor.FromArgb(200, 200, 200), 0.4);

        List<List<string>> Cells(IReadOnlyList<string> row, XFont font) =>
            [.. row.Select((text, c) => Wrap(text, font, cols[c] - (2 * Pad)))];

        void DrawRow(List<List<string>> cells, XFont font, XBrush? background)
        {
            var h = (cells.Max(c => c.Count) * lineH) + (2 * Pad);
            if (background is not null) Gfx.DrawRectangle(background, Left, Y, ContentWidth, h);
            var x = Left;
            for (var c = 0; c < cells.Count; c++)
            {
                for (var l = 0; l < cells[c].Count; l++) Draw(cells[c][l], font, XBrushes.Black, new XPoint(x + Pad, Y + Pad + SmallSize + (l * lineH)));
                x += cols[c];
            }
            Y += h;
            Gfx.DrawLine(rule, Left, Y, Left + ContentWidth, Y);
        }

        var head = Cells(headers, SmallBold);
        var headH = (head.Max(c => c.Count) * lineH) + (2 * Pad);
        var index = 0;
        var needHeader = true;
        foreach (var row in rows)
        {
            var cells = Cells(row, Small);
            var h = (cells.Max(c => c.Count) * lineH) + (2 * Pad);
            if (needHeader || Y + h > Bottom)
            {
                EnsureSpace(headH + h);
                DrawRow(head, SmallBold, headShade);
                needHeader = false;
            }
            DrawRow(cells, Small, index % 2 == 1 ? shade : null);
            index++;
        }
        if (needHeader)
        {
            EnsureSpace(headH);
            DrawRow(head, SmallBold, headShade);
        }
        Y += 8;
    }

    /// <summary>
    /// A PNG at the text width (scaled down to at most <paramref name="maxHeight"/> points tall and centred), its
    /// caption below; on a new page when it does not fit below the cursor.
    /// </summary>
    public void Image(byte[] png, string caption, double maxHeight = 520)
    {
        var image = XImage.FromStream(new MemoryStream(png, writable: false));
        _images.Add(image);
        var w = ContentWidth;
        var h = w * image.PixelHeight / image.PixelWidth;
        if (h > maxHeight) (w, h) = (w * maxHeight / h, maxHeight);
        var captionLines = Wrap(caption, Small, ContentWidth);
        EnsureSpace(h + (captionLines.Count * SmallSize * 1.35) + 8);
        Gfx.DrawImage(image, Left + ((ContentWidth - w) / 2), Y, w, h);
        _pageText[^1].AppendLine("[picture]");
        Y += h + 4;
        foreach (var line in captionLines)
        {
            Draw(line, Small, XBrushes.DimGray, new XPoint(Left, Y + SmallSize));
            Y += SmallSize * 1.35;
        }
        Y += 8;
    }

    /// <summary>
    /// Ends the layout and draws on every page the header (<paramref name="title"/> left, <paramref name="id"/>
    /// right) and the footer (generated-at left, "page k of n" right).
    /// </summary>
    public void Finish(string title, string id, DateTimeOffset generatedAt)
    {
        EnsureSpace(0);
        _gfx?.Dispose();
        _gfx = null;
        var rule = new XPen(XColor.FromArgb(150, 150, 150), 0.5);
        var right = XStringFormats.BaseLineRight;
        var generated = "generated " + generatedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);
        for (var i = 0; i < _doc.PageCount; i++)
        {
            using var gfx = XGraphics.FromPdfPage(_doc.Pages[i], XGraphicsPdfPageOptions.Append);
            var idWidth = gfx.MeasureString(id, Small).Width;
            Draw(gfx, _pageText[i], Fit(gfx, title, SmallBold, ContentWidth - idWidth - 16), SmallBold, XBrushes.Black, new XPoint(Left, 40));
            Draw(gfx, _pageText[i], id, Small, XBrushes.Black, new XPoint(Left + ContentWidth, 40), right);
            gfx.DrawLine(rule, Left, 46, Left + ContentWidth, 46);
            var footY = PageHeight - 34;
            gfx.DrawLine(rule, Left, footY - 12, Left + ContentWidth, footY - 12);
            Draw(gfx, _pageText[i], generated, Small, XBrushes.DimGray, new XPoint(Left, footY));
            Draw(gfx, _pageText[i], string.Create(CultureInfo.InvariantCulture, $"page {i + 1} of {_doc.PageCount}"), Small, XBrushes.Black, new XPoint(Left + ContentWidth, footY), right);
        }
    }

    public void Dispose()
    {
        _gfx?.Dispose();
        foreach (var image in _images) image.Dispose();
    }

    /// <summary>Lines of <paramref name="text"/> no wider than <paramref name="width"/> (words split only when one alone is too wide); at least one line.</summary>
    private List<string> Wrap(string text, XFont font, double width)
    {
        var lines = new List<string>();
        foreach (var paragraph in text.Split('\n'))
        {
            var line = "";
            foreach (var word in paragraph.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                var candidate = line.Length == 0 ? word : line + " " + word;
                if (Measure(candidate, font) <= width)
                {
                    line = candidate;
                    continue;
                }
                if (line.Length > 0) lines.Add(line);
                line = word;
                // A word wider than the column (an id, a path) is cut where it must be.
                while (Measure(line, font) > width && line.Length > 1)
                {
                    var cut = line.Length - 1;
                    while (cut > 1 && Measure(line[..cut], font) > width) cut--;
                    // Prefer a break after a separator (an RPC's "Service/Method", a dotted name).
                    var separator = line[..cut].LastIndexOfAny(['/', '.', '-', '_']);
                    if (separator >= cut / 3) cut = separator + 1;
                    lines.Add(line[..cut]);
                    line = line[cut..];
                }
            }
            lines.Add(line);
        }
        return lines;
    }

    /// <summary>The text drawn on each page, line by line, pictures as "[picture]": what tests read (the PDF's own text is glyph ids).</summary>
    public IReadOnlyList<string> PageTexts => [.. _pageText.Select(t => t.ToString())];

    private void Draw(string text, XFont font, XBrush brush, XPoint at) => Draw(Gfx, _pageText[^1], text, font, brush, at);

    private static void Draw(XGraphics gfx, System.Text.StringBuilder log, string text, XFont font, XBrush brush, XPoint at, XStringFormat? format = null)
    {
        gfx.DrawString(text, font, brush, at, format ?? XStringFormats.Default);
        log.AppendLine(text);
    }

    private double Measure(string text, XFont font) => Gfx.MeasureString(text, font).Width;

    private static string Fit(XGraphics gfx, string text, XFont font, double width)
    {
        if (gfx.MeasureString(text, font).Width <= width) return text;
        while (text.Length > 1 && gfx.MeasureString(text + "…", font).Width > width) text = text[..^1];
        return text + "…";
    }
}
