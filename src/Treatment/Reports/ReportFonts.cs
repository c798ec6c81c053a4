using PdfSharp.Fonts;
using SkiaSharp;

namespace SmpRobot.Treatment.Reports;

/// <summary>
/// The reports' one font family, DejaVu Sans, from Debian's fonts-dejavu-core (build.sh installs it), for the PDF
/// text and the pictures alike.
/// </summary>
/// <remarks>
/// Why a resolver: PDFsharp 6's platform-neutral build finds no system fonts on Linux (it looks for Windows fonts
/// only) and fails at the first <c>XFont</c>; an <see cref="IFontResolver"/> hands it the font files. DejaVu
/// because Debian ships it in a small package, it covers the characters the reports use (×, ±, ², µ, arrows) and
/// its licence allows embedding; the PDF embeds the subset used, so a reader needs no font installed. The pictures
/// load the same files so text in an image matches the page.
/// </remarks>
public sealed class ReportFonts : IFontResolver
{
    /// <summary>The family name the reports ask for.</summary>
    public const string Family = "DejaVu Sans";

    /// <summary>Where Debian's fonts-dejavu-core puts the files.</summary>
    public const string DefaultDirectory = "/usr/share/fonts/truetype/dejavu";

    private static readonly Lock Gate = new();
    private static ReportFonts? _installed;

    private readonly string _directory;
    private readonly Dictionary<string, byte[]> _faces = [];

    private ReportFonts(string directory) => _directory = directory;

    /// <summary>Fonts from another directory, not installed in PDFsharp (for tests of a missing font).</summary>
    internal static ReportFonts ForDirectory(string directory) => new(directory);

    /// <summary>Loads the regular and bold faces now; throws <see cref="FileNotFoundException"/> naming the package when one is missing.</summary>
    internal void Check()
    {
        foreach (var face in new[] { "DejaVuSans", "DejaVuSans-Bold" }) Load(face);
    }

    /// <summary>
    /// Makes PDFsharp use these fonts (once per process: PDFsharp's resolver is global and may not change after
    /// first use) and returns them. Throws <see cref="FileNotFoundException"/> naming the package when a file is
    /// missing, before any page is drawn.
    /// </summary>
    public static ReportFonts Install()
    {
        lock (Gate)
        {
            if (_installed is not null) return _installed;
            var fonts = new ReportFonts(DefaultDirectory);
            fonts.Check();
            // Another resolver set elsewhere in the process is left in place: it must then know "DejaVu Sans".
            GlobalFontSettings.FontResolver ??= fonts;
            _installed = fonts;
            return fonts;
        }
    }

    /// <summary>The regular or bold face as a SkiaSharp typeface (caller disposes).</summary>
    public SKTypeface Typeface(bool bold = false)
    {
        var bytes = Load(bold ? "DejaVuSans-Bold" : "DejaVuSans");
        using var data = SKData.CreateCopy(bytes);
        return SKTypeface.FromData(data) ?? throw new InvalidOperationException("SkiaSharp could not read the DejaVu Sans font");
    }

    /// <inheritdoc />
    public FontResolverInfo? ResolveTypeface(string familyName, bool bold, bool italic)
    {
        // Every family the reports might ask for maps to DejaVu Sans; italics are simulated (no oblique file is needed).
        return new FontResolverInfo(bold ? "DejaVuSans-Bold" : "DejaVuSans", false, italic);
    }

    /// <inheritdoc />
    public byte[]? GetFont(string faceName) => Load(faceName);

    private byte[] Load(string face)
    {
        lock (_faces)
        {
            if (_faces.TryGetValue(face, out var known)) return known;
            var path = Path.Combine(_directory, face + ".ttf");
            if (!File.Exists(path))
            {
                throw new FileNotFoundException(
                    $"the PDF reports need the font {path} (Debian package fonts-dejavu-core: apt-get install fonts-dejavu-core)", path);
            }
            var bytes = File.ReadAllBytes(path);
            _faces[face] = bytes;
            return bytes;
        }
    }
}
