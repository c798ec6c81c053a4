using System.Globalization;
using SkiaSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Treatment.Preview;

/// <summary>One probe of a surface registration as drawn: where it was aimed and touched (frame H), its residual, whether the fit used it.</summary>
public sealed record PictureContact(int Index, Vec3 AimH, Vec3 ContactH, double ResidualMm, bool Inlier);

/// <summary>
/// A surface registration as a picture, for the engineer who judges it: the probes seen from above the head frame H
/// (X right, Y up), each a disc coloured by its residual on a scale to the registration's tolerance (blue: the skin
/// is inside the registered surface, red: outside), outliers crossed, the probe order as a thin path, and the
/// figures in words beside a colour bar and a 5 mm scale.
/// </summary>
public static class SurfacePicture
{
    /// <summary>Writes the picture as a PNG to <paramref name="path"/>.</summary>
    /// <param name="title">The first line (the registration's id and head position).</param>
    /// <param name="summary">The second line (valid or not, RMS, p95, max, contacts).</param>
    /// <param name="toleranceMm">The residual at either end of the colour scale (the registration's largest allowed).</param>
    public static void WritePng(IReadOnlyList<PictureContact> contacts, string title, string summary, double toleranceMm, string path)
    {
        ArgumentNullException.ThrowIfNull(contacts);
        ArgumentNullException.ThrowIfNull(path);
        if (contacts.Count == 0) throw new ArgumentException("a registration picture needs its contacts", nameof(contacts));
        const int Size = 720, TitlePx = 70, BarPx = 90, Margin = 40;
        var minX = contacts.Min(c => c.ContactH.X);
        var maxX = contacts.Max(c => c.ContactH.X);
        var minY = contacts.Min(c => c.ContactH.Y);
        var maxY = contacts.Max(c => c.ContactH.Y);
        var spanMm = Math.Max(Math.Max(maxX - minX, maxY - minY), 5);
        var pxPerMm = (Size - (2 * Margin)) / spanMm;
        var cx = (minX + maxX) / 2;
        var cy = (minY + maxY) / 2;
        SKPoint P(Vec3 p) => new((float)((Size / 2) + ((p.X - cx) * pxPerMm)), (float)(TitlePx + (Size / 2) - ((p.Y - cy) * pxPerMm)));

        using var surface = SKSurface.Create(new SKImageInfo(Size, Size + TitlePx + BarPx, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(new SKColor(246, 246, 244));
        using var skin = new SKPaint { Color = new SKColor(236, 214, 196) };
        canvas.DrawRect(0, TitlePx, Size, Size, skin);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var font = new SKFont(SKTypeface.Default, 22);
        using var small = new SKFont(SKTypeface.Default, 16);
        canvas.DrawText(title, 10, 28, font, ink);
        canvas.DrawText(summary + " · from above H, X right, Y up", 10, 56, small, ink);

        using var path_ = new SKPaint { Color = new SKColor(90, 90, 90, 110), IsAntialias = true, StrokeWidth = 1.5f, Style = SKPaintStyle.Stroke };
        for (var i = 1; i < contacts.Count; i++) canvas.DrawLine(P(contacts[i - 1].ContactH), P(contacts[i].ContactH), path_);
        using var fill = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Fill };
        using var rim = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = 2, Color = SKColors.Black };
        foreach (var c in contacts)
        {
            var at = P(c.ContactH);
            fill.Color = Colour(c.ResidualMm / toleranceMm);
            canvas.DrawCircle(at, 11, fill);
            canvas.DrawCircle(at, 11, rim);
            if (!c.Inlier)
            {
                canvas.DrawLine(at.X - 14, at.Y - 14, at.X + 14, at.Y + 14, rim);
                canvas.DrawLine(at.X - 14, at.Y + 14, at.X + 14, at.Y - 14, rim);
            }
            canvas.DrawText(c.Index.ToString(CultureInfo.InvariantCulture), at.X + 14, at.Y - 10, small, ink);
        }

        // The colour scale and a 5 mm bar.
        var y0 = TitlePx + Size + 20;
        for (var k = 0; k < 200; k++)
        {
            fill.Color = Colour((k / 199.0 * 2) - 1);
            canvas.DrawRect(Margin + k, y0, 1.5f, 16, fill);
        }
        canvas.DrawText(string.Create(CultureInfo.InvariantCulture, $"residual ±{toleranceMm:0.00} mm: red outside, blue inside; × outlier"), Margin + 210, y0 + 14, small, ink);
        var barPx = (float)(5 * pxPerMm);
        using var bar = new SKPaint { Color = SKColors.Black, StrokeWidth = 3 };
        canvas.DrawLine(Margin, y0 + 50, Margin + barPx, y0 + 50, bar);
        canvas.DrawText("5 mm", Margin + barPx + 10, y0 + 55, small, ink);

        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    /// <summary>−1 blue, 0 white, +1 red; beyond ±1 the end colours.</summary>
    private static SKColor Colour(double t)
    {
        t = Math.Clamp(t, -1, 1);
        var a = (byte)(255 * (1 - Math.Abs(t)));
        return t >= 0 ? new SKColor(255, a, a) : new SKColor(a, a, 255);
    }
}
