using System.Globalization;

namespace SmpRobot.Vision;

/// <summary>What <see cref="BoardPrint.Render"/> writes: a PNG at a dpi or a vector PDF.</summary>
public enum BoardPrintFormat
{
    /// <summary>8-bit grey PNG, its dpi recorded in a pHYs chunk.</summary>
    Png,

    /// <summary>One-page vector PDF at true scale.</summary>
    Pdf,
}

/// <summary>Where the board of a <see cref="BoardPrint.Render"/> comes from: a named board of a boards folder, or a board file's text.</summary>
public sealed class BoardSource
{
    private BoardSource(string? boardsDirectory, string? name, string? json)
    {
        BoardsDirectory = boardsDirectory;
        Name = name;
        Json = json;
    }

    /// <summary>The hardware/boards/ folder: where a named board is read and, for board text, the alternatives an error names; null when unknown (a console without the controller's folder).</summary>
    public string? BoardsDirectory { get; }

    /// <summary>The board's name in <see cref="BoardsDirectory"/> (null for board text).</summary>
    public string? Name { get; }

    /// <summary>A board file's JSON text (null for a named board).</summary>
    public string? Json { get; }

    /// <summary>Board <paramref name="name"/> ("head-charuco-5x4", ".json" optional) of <paramref name="boardsDirectory"/>.</summary>
    public static BoardSource Named(string boardsDirectory, string name)
    {
        ArgumentNullException.ThrowIfNull(boardsDirectory);
        ArgumentNullException.ThrowIfNull(name);
        return new BoardSource(boardsDirectory, name, null);
    }

    /// <summary>
    /// A board file's JSON text. <paramref name="boardsDirectory"/>, when given, is only used to list the
    /// boards available instead in the error about text that is not a usable board.
    /// </summary>
    public static BoardSource FromJson(string json, string? boardsDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        return new BoardSource(boardsDirectory, null, json);
    }
}

/// <summary>
/// A rendered board page and what a person needs to print and check it. Sizes in mm; the pixel size
/// and dpi are those of the PNG (0 for the PDF, which is vector).
/// </summary>
/// <param name="Format">What <see cref="Data"/> is.</param>
/// <param name="BoardName">The board's own name (from its file).</param>
/// <param name="BoardDescription">"DICT_4X4_50, 5 x 4 squares of 6 mm, markers 4.5 mm".</param>
/// <param name="BoardWidthMm">Printed board width (its outer squares), mm.</param>
/// <param name="BoardHeightMm">Printed board height, mm.</param>
/// <param name="PageWidthMm">Whole page width, mm.</param>
/// <param name="PageHeightMm">Whole page height, mm.</param>
/// <param name="ScaleBarMm">Length of the printed scale bar, mm.</param>
/// <param name="PrintNote">How to print it at true scale.</param>
/// <param name="MeasureHint">How to check the print with a ruler.</param>
/// <param name="WidthPx">PNG width, px (0 for the PDF).</param>
/// <param name="HeightPx">PNG height, px (0 for the PDF).</param>
/// <param name="Dpi">PNG resolution, dots per inch (0 for the PDF).</param>
/// <param name="Data">The file's bytes.</param>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1819", Justification = "the encoded PNG, written to a file or a gRPC reply once; a copy would serve nothing")]
public sealed record BoardPrintout(
    BoardPrintFormat Format,
    string BoardName,
    string BoardDescription,
    double BoardWidthMm,
    double BoardHeightMm,
    double PageWidthMm,
    double PageHeightMm,
    double ScaleBarMm,
    string PrintNote,
    string MeasureHint,
    int WidthPx,
    int HeightPx,
    int Dpi,
    byte[] Data);

/// <summary>A request <see cref="BoardPrint.Render"/> cannot honour (unknown or unusable board, dpi out of range); the message is for a person.</summary>
public sealed class BoardPrintException : Exception
{
    /// <summary>A refusal saying <paramref name="message"/>.</summary>
    public BoardPrintException(string message) : base(message)
    {
    }

    /// <summary>A refusal saying <paramref name="message"/>, caused by <paramref name="innerException"/>.</summary>
    public BoardPrintException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>Required by the usual exception constructors; says nothing useful.</summary>
    public BoardPrintException() : base("the board cannot be printed")
    {
    }
}

/// <summary>
/// <c>smp board print</c>'s work, in one place for the controller (CameraService.RenderBoard, boards of its
/// hardware folder) and the console (a board file on the operator's computer, rendered without a controller).
/// </summary>
public static class BoardPrint
{
    /// <summary>PNG resolution when none is given (0).</summary>
    public const int DefaultDpi = 600;

    /// <summary>Largest board JSON text accepted, characters (boards are a few hundred).</summary>
    public const int MaxBoardJsonChars = 64 * 1024;

    /// <summary>
    /// Loads or parses the board of <paramref name="source"/>, lays it out on a page and writes it as
    /// <paramref name="format"/>; <paramref name="dpi"/> 0 means <see cref="DefaultDpi"/> and is ignored for
    /// the PDF. Throws <see cref="BoardPrintException"/> when the board is unknown or unusable or the dpi is
    /// out of <see cref="BoardPage.MinDpi"/>..<see cref="BoardPage.MaxDpi"/> (or too high for the page).
    /// </summary>
    public static BoardPrintout Render(BoardSource source, BoardPrintFormat format, int dpi)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (format is not (BoardPrintFormat.Png or BoardPrintFormat.Pdf)) throw new BoardPrintException($"unknown board format {(int)format}: PNG or PDF");
        var pdf = format == BoardPrintFormat.Pdf;
        var pngDpi = dpi == 0 ? DefaultDpi : dpi;
        // Checked before the board is read, so a bad dpi is refused whatever the board.
        if (!pdf && pngDpi is < BoardPage.MinDpi or > BoardPage.MaxDpi)
        {
            throw new BoardPrintException(string.Create(CultureInfo.InvariantCulture, $"dpi must be {BoardPage.MinDpi}..{BoardPage.MaxDpi} (0 = {DefaultDpi}), not {dpi}"));
        }
        if (source.Json is { Length: > MaxBoardJsonChars }) throw new BoardPrintException($"the board text is longer than {MaxBoardJsonChars} characters");
        try
        {
            using var board = source.Name is { } name ? BoardFiles.Load(source.BoardsDirectory!, name) : BoardPage.ParseBoard(source.Json!);
            var page = BoardPage.For(board);
            var size = default(OpenCvSharp.Size);
            var data = pdf ? BoardPdf.Write(page) : page.ToPng(pngDpi, out size);
            return new BoardPrintout(
                format,
                board.Spec.Name,
                page.Description,
                page.BoardWidthMm,
                page.BoardHeightMm,
                page.PageWidthMm,
                page.PageHeightMm,
                page.ScaleBarMm,
                page.PrintNote(pdf ? 0 : pngDpi),
                page.MeasureHint,
                pdf ? 0 : size.Width,
                pdf ? 0 : size.Height,
                pdf ? 0 : pngDpi,
                data);
        }
        catch (ArgumentException e)
        {
            // Bad names, bad JSON (JsonException is wrapped as one), unusable boards, a dpi too high for the page.
            // ArgumentException appends " (Parameter 'x')" to its message: not for a person.
            var detail = e.ParamName is null ? e.Message : e.Message.Split(" (Parameter", 2)[0];
            // Board text that is not a board: the named boards are an alternative worth listing when they are known.
            if (e is not ArgumentOutOfRangeException && source.Name is null && source.BoardsDirectory is { } folder)
            {
                detail += "; " + BoardFiles.AvailableText(folder);
            }
            throw new BoardPrintException(detail, e);
        }
    }
}
