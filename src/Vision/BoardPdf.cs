using System.Globalization;
using System.Text;

namespace SmpRobot.Vision;

/// <summary>
/// Writes a <see cref="BoardPage"/> as a one-page vector PDF at true scale: the page is exactly the
/// layout's size (points = mm × 72 / 25.4), every black square, marker cell run, scale-bar part and
/// corner mark a filled rectangle, and the caption in the standard Helvetica font (not embedded).
/// </summary>
/// <remarks>
/// Written by hand on purpose: the one well-known .NET PDF library in the package mirror (PDFsharp
/// 6.5) now refuses to run until the program loads an AGPL or commercial licence, and the project
/// adds no package for what is a few rectangles and four lines of text. Only the PDF subset needed
/// here is produced (one page, uncompressed content, standard font), so it stays easy to check.
/// </remarks>
public static class BoardPdf
{
    /// <summary>Points per mm (1 pt = 1/72 inch).</summary>
    public const double PointsPerMm = 72 / 25.4;

    /// <summary>The PDF's bytes. Deterministic: the same page gives the same bytes (no dates, no ids).</summary>
    public static byte[] Write(BoardPage page)
    {
        ArgumentNullException.ThrowIfNull(page);
        var pageWidthPt = page.PageWidthMm * PointsPerMm;
        var pageHeightPt = page.PageHeightMm * PointsPerMm;
        var content = Content(page, pageHeightPt);

        var objects = new List<string>
        {
            // PrintScaling /None makes "actual size" the print dialog's default in viewers that honour it.
            "<< /Type /Catalog /Pages 2 0 R /ViewerPreferences << /PrintScaling /None >> >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            $"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {N(pageWidthPt)} {N(pageHeightPt)}] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
            $"<< /Length {Encoding.ASCII.GetByteCount(content)} >>\nstream\n{content}\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
            $"<< /Title {Text("Marker board " + page.Board.Spec.Name)} /Creator (SmpRobot) >>",
        };

        using var output = new MemoryStream();
        // The second line's bytes above 127 tell transfer tools the file is binary.
        Write(output, "%PDF-1.7\n%\u00e2\u00e3\u00cf\u00d3\n", Encoding.Latin1);
        var offsets = new long[objects.Count];
        for (var i = 0; i < objects.Count; i++)
        {
            offsets[i] = output.Position;
            Write(output, $"{i + 1} 0 obj\n{objects[i]}\nendobj\n", Encoding.ASCII);
        }
        var xref = output.Position;
        var sb = new StringBuilder();
        sb.Append("xref\n0 ").Append((objects.Count + 1).ToString(CultureInfo.InvariantCulture)).Append('\n');
        // Each entry is exactly 20 bytes, end of line included.
        sb.Append("0000000000 65535 f \n");
        foreach (var offset in offsets) sb.Append(offset.ToString("D10", CultureInfo.InvariantCulture)).Append(" 00000 n \n");
        sb.Append("trailer\n<< /Size ").Append((objects.Count + 1).ToString(CultureInfo.InvariantCulture)).Append(" /Root 1 0 R /Info 6 0 R >>\n");
        sb.Append("startxref\n").Append(xref.ToString(CultureInfo.InvariantCulture)).Append("\n%%EOF\n");
        Write(output, sb.ToString(), Encoding.ASCII);
        return output.ToArray();
    }

    private static string Content(BoardPage page, double pageHeightPt)
    {
        var sb = new StringBuilder();
        sb.Append("0 g\n");
        // PDF's y axis points up from the bottom-left corner; the layout's points down from the top-left.
        foreach (var r in page.BoardRects.Concat(page.MarkRects))
        {
            sb.Append(N(r.XMm * PointsPerMm)).Append(' ')
                .Append(N(pageHeightPt - ((r.YMm + r.HeightMm) * PointsPerMm))).Append(' ')
                .Append(N(r.WidthMm * PointsPerMm)).Append(' ')
                .Append(N(r.HeightMm * PointsPerMm)).Append(" re f\n");
        }
        sb.Append("BT\n/F1 ").Append(N(BoardPage.CaptionFontPt)).Append(" Tf\n");
        for (var i = 0; i < page.Caption.Count; i++)
        {
            var baselinePt = pageHeightPt - ((page.CaptionTopMm + ((i + 0.75) * page.CaptionLineMm)) * PointsPerMm);
            sb.Append("1 0 0 1 ").Append(N(BoardPage.MarginMm * PointsPerMm)).Append(' ').Append(N(baselinePt)).Append(" Tm ")
                .Append(Text(page.Caption[i])).Append(" Tj\n");
        }
        sb.Append("ET");
        return sb.ToString();
    }

    /// <summary>A PDF literal string of printable ASCII; other characters become '?'.</summary>
    private static string Text(string text)
    {
        var sb = new StringBuilder("(");
        foreach (var c in text)
        {
            if (c is '(' or ')' or '\\') sb.Append('\\').Append(c);
            else sb.Append(c is >= ' ' and <= '~' ? c : '?');
        }
        return sb.Append(')').ToString();
    }

    /// <summary>Numbers as PDF wants them: no exponent, invariant, 4 decimals (1/10,000 pt ≈ 35 nm).</summary>
    private static string N(double value) => value.ToString("0.####", CultureInfo.InvariantCulture);

    private static void Write(Stream output, string text, Encoding encoding)
    {
        var bytes = encoding.GetBytes(text);
        output.Write(bytes);
    }
}
