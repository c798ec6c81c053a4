using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Vision;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp board print BOARD (--png FILE | --pdf FILE) [--dpi N]</c>.</summary>
internal static class BoardCommand
{
    /// <summary>Largest board file read (boards are a few hundred bytes; <see cref="BoardPrint.MaxBoardJsonChars"/> is the same 64 Ki).</summary>
    public const long MaxBoardFileBytes = 64 * 1024;

    /// <summary>Rendering a large board at a high dpi takes a few seconds on a small controller.</summary>
    public static readonly TimeSpan RenderTimeout = TimeSpan.FromSeconds(60);

    public static Command Build(CliCommands app)
    {
        var board = new Argument<string>("BOARD")
        {
            Description = "A board of the controller's hardware/boards/ folder (e.g. head-charuco-5x4), or a board file (*.json) on this computer",
        };
        var png = new Option<string?>("--png") { Description = "Write a PNG (grey, its dpi recorded in the file) to FILE", HelpName = "FILE" };
        var pdf = new Option<string?>("--pdf") { Description = "Write a vector PDF, one page at true scale, to FILE (best for printing)", HelpName = "FILE" };
        var dpi = new Option<int?>("--dpi") { Description = "PNG resolution, dots per inch (default 600; 150..2400)", HelpName = "N" };
        var print = new Command("print", "A marker board as a printable page at true scale: the board, corner marks, a scale bar of known length "
            + "and a caption. Print at 100 % (no fit-to-page), then measure the scale bar with a ruler.")
        {
            board, png, pdf, dpi,
        };
        print.Validators.Add(result =>
        {
            var hasPng = result.GetResult(png) is not null;
            var hasPdf = result.GetResult(pdf) is not null;
            if (hasPng == hasPdf)
            {
                result.AddError("give exactly one of --png FILE or --pdf FILE");
                return;
            }
            // An unparsable number is already a parse error of its option.
            var dpiResult = result.GetResult(dpi);
            if (dpiResult is null || dpiResult.Errors.Any()) return;
            if (hasPdf) result.AddError("--dpi applies to --png only (the PDF is vector: it prints sharp at any resolution)");
            else if (result.GetValue(dpi) is not > 0) result.AddError("--dpi must be a positive number");
        });
        app.Bind(print, async (ctx, parse, ct) =>
        {
            var isPdf = parse.GetValue(pdf) is not null;
            var path = (isPdf ? parse.GetValue(pdf) : parse.GetValue(png))!;
            OutputFile.Check(path);
            var boardArg = parse.GetValue(board)!;
            BoardPicture picture;
            if (IsLocalFile(boardArg))
            {
                // A board file on this computer is rendered here, with the controller's own function: no controller needed.
                picture = ToPicture(RenderLocal(boardArg, isPdf, parse.GetValue(dpi) ?? 0));
            }
            else
            {
                // A bare name is a board of the controller's hardware/boards/ folder: that folder is the truth.
                var request = new RenderBoardRequest { Format = isPdf ? BoardFormat.Pdf : BoardFormat.Png, Dpi = parse.GetValue(dpi) ?? 0, Name = boardArg };
                using var conn = ctx.Connect();
                picture = await conn.Camera.RenderBoardAsync(request, deadline: conn.Deadline(RenderTimeout), cancellationToken: ct);
            }
            OutputFile.Write(path, picture.Data.Span);
            ctx.Result(Describe(picture, path), OutputFile.Json(picture, "data", path, picture.Data.Length));
            return ExitCodes.Success;
        });
        return new Command("board", "Marker boards (the head tracker's ChArUco boards)") { print };
    }

    /// <summary>Text of <c>smp board print</c>: what was written, its sizes, how to print and check it.</summary>
    public static string Describe(BoardPicture p, string path)
    {
        var sb = new StringBuilder();
        sb.Append("Wrote     ").Append(path).Append(" (").Append(p.Format == BoardFormat.Pdf ? "PDF" : "PNG").Append(", ")
            .Append(p.Data.Length.ToString(CultureInfo.InvariantCulture)).AppendLine(" bytes)");
        sb.Append("Board     ").Append(p.BoardName).Append(": ").AppendLine(p.BoardDescription);
        sb.Append("Size      board ").Append(Mm(p.BoardWidthMm)).Append(" x ").Append(Mm(p.BoardHeightMm)).Append(" mm on a ")
            .Append(Mm(p.PageWidthMm)).Append(" x ").Append(Mm(p.PageHeightMm)).Append(" mm page");
        if (p.Format != BoardFormat.Pdf)
        {
            sb.Append(", ").Append(p.WidthPx.ToString(CultureInfo.InvariantCulture)).Append(" x ").Append(p.HeightPx.ToString(CultureInfo.InvariantCulture))
                .Append(" px at ").Append(p.Dpi.ToString(CultureInfo.InvariantCulture)).Append(" dpi");
        }
        sb.AppendLine();
        sb.Append("Print     ").AppendLine(p.PrintNote);
        sb.Append("Check     ").Append(p.MeasureHint);
        return sb.ToString();
    }

    private static string Mm(double value) => Formatting.Number(value, "0.#");

    /// <summary>
    /// An existing file given as a path (a bare board name is the controller's). A path with a folder in it that
    /// does not exist is refused (exit 2): it can never be a board name, and asking the controller would only
    /// hide the typo behind "unknown board".
    /// </summary>
    private static bool IsLocalFile(string arg)
    {
        var hasFolder = arg.Contains('/', StringComparison.Ordinal) || arg.Contains(Path.DirectorySeparatorChar, StringComparison.Ordinal);
        if ((hasFolder || arg.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) && File.Exists(arg)) return true;
        if (hasFolder) throw new CliException(ExitCodes.Usage, $"board file {arg} does not exist");
        return false;
    }

    /// <summary>Renders a local board file in this process; a board that is not usable (or a bad dpi) → exit code 2, nothing written.</summary>
    private static BoardPrintout RenderLocal(string path, bool pdf, int dpi)
    {
        var json = ReadBoardFile(path);
        try
        {
            return BoardPrint.Render(BoardSource.FromJson(json), pdf ? BoardPrintFormat.Pdf : BoardPrintFormat.Png, dpi);
        }
        catch (BoardPrintException e)
        {
            throw new CliException(ExitCodes.Usage, $"cannot print board file {path}: {e.Message}");
        }
    }

    /// <summary>The controller's reply for the same rendering (CameraService.RenderBoard maps it the same way), so text and --json keep one shape.</summary>
    internal static BoardPicture ToPicture(BoardPrintout p) => new()
    {
        Format = p.Format == BoardPrintFormat.Pdf ? BoardFormat.Pdf : BoardFormat.Png,
        BoardName = p.BoardName,
        BoardDescription = p.BoardDescription,
        BoardWidthMm = p.BoardWidthMm,
        BoardHeightMm = p.BoardHeightMm,
        PageWidthMm = p.PageWidthMm,
        PageHeightMm = p.PageHeightMm,
        ScaleBarMm = p.ScaleBarMm,
        PrintNote = p.PrintNote,
        MeasureHint = p.MeasureHint,
        WidthPx = p.WidthPx,
        HeightPx = p.HeightPx,
        Dpi = p.Dpi,
        Data = ByteString.CopyFrom(p.Data),
    };

    private static string ReadBoardFile(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (info.Length > MaxBoardFileBytes) throw new CliException(ExitCodes.Usage, $"board file {path} is larger than {MaxBoardFileBytes / 1024} KiB");
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CliException(ExitCodes.Usage, $"cannot read board file {path}: {e.Message}");
        }
    }
}

/// <summary>Files the CLI writes (pictures): checked before any rendering (here or on the controller), written whole.</summary>
internal static class OutputFile
{
    /// <summary>Refuses (exit code 2) a path that cannot be a new or replaced file: bad, a folder, or in a missing folder.</summary>
    public static void Check(string path)
    {
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new CliException(ExitCodes.Usage, $"bad output path '{path}': {e.Message}");
        }
        if (Directory.Exists(full)) throw new CliException(ExitCodes.Usage, $"cannot write {path}: it is a folder; give a file name");
        var folder = Path.GetDirectoryName(full);
        if (folder is not null && !Directory.Exists(folder)) throw new CliException(ExitCodes.Usage, $"cannot write {path}: folder {folder} does not exist");
    }

    /// <summary>
    /// The --json object of a command that wrote a reply's bytes to a file: the reply without its
    /// <paramref name="bytesField"/> (JSON name), plus file, bytes and exitCode 0.
    /// </summary>
    public static JsonObject Json(Google.Protobuf.IMessage reply, string bytesField, string path, int length)
    {
        var json = JsonOutput.Message(reply);
        json.Remove(bytesField);
        json["file"] = path;
        json["bytes"] = length;
        json["exitCode"] = ExitCodes.Success;
        return json;
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/>, replacing it; failure → exit code 2 with the reason.</summary>
    public static void Write(string path, ReadOnlySpan<byte> bytes)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
            stream.Write(bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException(ExitCodes.Usage, $"cannot write {path}: {e.Message}");
        }
    }
}
