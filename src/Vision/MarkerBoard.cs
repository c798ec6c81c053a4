using System.Text.Json;
using System.Text.Json.Serialization;
using OpenCvSharp;
using OpenCvSharp.Aruco;
using SmpRobot.Geometry;

namespace SmpRobot.Vision;

/// <summary>The JSON form of a board (hardware/boards/*.json).</summary>
public sealed record MarkerBoardSpec
{
    public string Name { get; init; } = "";
    /// <summary>"charuco" (the only type so far).</summary>
    public string Type { get; init; } = "charuco";
    /// <summary>OpenCV predefined dictionary name, e.g. "DICT_4X4_50".</summary>
    public string Dictionary { get; init; } = "DICT_4X4_50";
    public int SquaresX { get; init; }
    public int SquaresY { get; init; }
    public double SquareMm { get; init; }
    public double MarkerMm { get; init; }
    /// <summary>Marker ids in board order; must be 0..n-1 when given.</summary>
    public IReadOnlyList<int>? Ids { get; init; }
}

/// <summary>
/// A ChArUco marker board and the head frame H fixed to it: origin at the board's centre, X along
/// the rows of squares (rightwards on the printed page), Y towards the top of the page, Z out of the
/// printed face (towards the camera); mm. Owns native OpenCV objects: dispose it.
/// </summary>
public sealed class MarkerBoard : IDisposable
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        NumberHandling = JsonNumberHandling.Strict,
    };

    private readonly Vec3[] _cornersH;

    /// <summary>The description this board was built from.</summary>
    public MarkerBoardSpec Spec { get; }

    /// <summary>OpenCV's board (marker ids 0..n-1 in board order).</summary>
    public CharucoBoard Board { get; }

    /// <summary>The marker dictionary.</summary>
    public Dictionary Dictionary { get; }

    /// <summary>Board width (X), mm.</summary>
    public double WidthMm => Spec.SquaresX * Spec.SquareMm;

    /// <summary>Board height (Y), mm.</summary>
    public double HeightMm => Spec.SquaresY * Spec.SquareMm;

    /// <summary>Number of ChArUco (inner chessboard) corners.</summary>
    public int CornerCount => _cornersH.Length;

    /// <summary>Number of markers on the board.</summary>
    public int MarkerCount { get; }

    /// <summary>Builds a board after checking the description; throws ArgumentException when it is not usable.</summary>
    public MarkerBoard(MarkerBoardSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (!string.Equals(spec.Type, "charuco", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"board '{spec.Name}': type '{spec.Type}' is not supported (only 'charuco')");
        }
        if (spec.SquaresX < 2 || spec.SquaresY < 2 || spec.SquaresX > 64 || spec.SquaresY > 64)
        {
            throw new ArgumentException($"board '{spec.Name}': squaresX and squaresY must be 2..64");
        }
        if (!(spec.SquareMm > 0) || !(spec.MarkerMm > 0) || spec.MarkerMm >= spec.SquareMm || !double.IsFinite(spec.SquareMm))
        {
            throw new ArgumentException($"board '{spec.Name}': need 0 < markerMm < squareMm");
        }
        var dictionaryType = ParseDictionary(spec.Dictionary);
        MarkerCount = spec.SquaresX * spec.SquaresY / 2;
        if (spec.Ids is { } ids && !ids.SequenceEqual(Enumerable.Range(0, MarkerCount)))
        {
            throw new ArgumentException($"board '{spec.Name}': ids must be 0..{MarkerCount - 1} in order (OpenCvSharp's CharucoBoard numbers markers itself)");
        }
        Spec = spec;
        Dictionary = CvAruco.GetPredefinedDictionary(dictionaryType);
        if (MarkerCount > DictionarySize(dictionaryType))
        {
            Dictionary.Dispose();
            throw new ArgumentException($"board '{spec.Name}': {MarkerCount} markers do not fit dictionary {spec.Dictionary}");
        }
        Board = new CharucoBoard(spec.SquaresX, spec.SquaresY, (float)spec.SquareMm, (float)spec.MarkerMm, Dictionary);

        // OpenCV numbers ChArUco corners row by row from the top-left inner corner, in a board frame
        // with x right, y down (printed page); convert to H (centred, y up, z out of the face).
        var cols = spec.SquaresX - 1;
        var rows = spec.SquaresY - 1;
        _cornersH = new Vec3[cols * rows];
        for (var row = 0; row < rows; row++)
        {
            for (var col = 0; col < cols; col++)
            {
                _cornersH[(row * cols) + col] = new Vec3(((col + 1) * spec.SquareMm) - (WidthMm / 2), (HeightMm / 2) - ((row + 1) * spec.SquareMm), 0);
            }
        }
    }

    /// <summary>Loads hardware/boards/NAME.json (comments and trailing commas allowed).</summary>
    public static MarkerBoard Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"board file not found: {path}", path);
        if (info.Length > 64 * 1024) throw new ArgumentException($"board file {path} is larger than 64 KiB");
        var spec = JsonSerializer.Deserialize<MarkerBoardSpec>(File.ReadAllText(path), JsonOptions)
                   ?? throw new ArgumentException($"board file {path} is empty");
        return new MarkerBoard(spec);
    }

    /// <summary>The default head board of hardware/boards/head-charuco-5x4.json, built in.</summary>
    public static MarkerBoard DefaultHeadBoard() => new(new MarkerBoardSpec
    {
        Name = "head-charuco-5x4", Type = "charuco", Dictionary = "DICT_4X4_50", SquaresX = 5, SquaresY = 4, SquareMm = 6.0, MarkerMm = 4.5,
    });

    /// <summary>Position of ChArUco corner <paramref name="cornerId"/> in the head frame H, mm.</summary>
    public Vec3 CornerInHead(int cornerId) => _cornersH[cornerId];

    /// <summary>Maps a point of the printed page (mm from the top-left, y down) to H.</summary>
    public Vec3 PageToHead(double xMm, double yMm) => new(xMm - (WidthMm / 2), (HeightMm / 2) - yMm, 0);

    /// <summary>
    /// Renders the board (no margin) as an 8-bit grey image at <paramref name="pxPerMm"/>, size
    /// round(mm × pxPerMm) per side. The caller disposes the Mat.
    /// </summary>
    public Mat Render(double pxPerMm)
    {
        if (!(pxPerMm > 0) || !double.IsFinite(pxPerMm)) throw new ArgumentOutOfRangeException(nameof(pxPerMm));
        var size = new Size((int)Math.Round(WidthMm * pxPerMm), (int)Math.Round(HeightMm * pxPerMm));
        if (size.Width > 20000 || size.Height > 20000) throw new ArgumentOutOfRangeException(nameof(pxPerMm), "board image would exceed 20000 px");
        var image = new Mat();
        Board.GenerateImage(size, image, 0, 1);
        return image;
    }

    /// <summary>
    /// Writes a printable PNG at true scale: <paramref name="dpi"/> dots per inch, so each side is
    /// round(mm × dpi / 25.4) pixels. Print at that DPI with scaling off. Returns the pixel size.
    /// </summary>
    public Size RenderPng(string path, double dpi)
    {
        using var image = Render(dpi / 25.4);
        if (!Cv2.ImWrite(path, image)) throw new IOException($"could not write {path}");
        return image.Size();
    }

    /// <summary>Parses "DICT_4X4_50"-style names (case-insensitive).</summary>
    public static PredefinedDictionaryType ParseDictionary(string name)
    {
        var key = (name ?? "").Replace("DICT_", "", StringComparison.OrdinalIgnoreCase).Replace("_", "", StringComparison.Ordinal).ToUpperInvariant();
        foreach (var value in Enum.GetValues<PredefinedDictionaryType>())
        {
            var candidate = value.ToString().Replace("Dict", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal).ToUpperInvariant();
            if (candidate == key) return value;
        }
        throw new ArgumentException($"unknown marker dictionary '{name}' (e.g. DICT_4X4_50, DICT_5X5_100)");
    }

    private static int DictionarySize(PredefinedDictionaryType type)
    {
        var text = type.ToString();
        var last = text[(text.LastIndexOf('_') + 1)..];
        return int.TryParse(last, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 1000;
    }

    public void Dispose()
    {
        Board.Dispose();
        Dictionary.Dispose();
    }
}
