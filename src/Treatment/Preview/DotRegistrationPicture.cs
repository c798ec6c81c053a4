using System.Globalization;
using SkiaSharp;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Registration;

namespace SmpRobot.Treatment.Preview;

/// <summary>
/// A registration to the earlier sessions' dots as a picture, for the engineer who judges it: the patch of skin in view
/// seen along its normal (frame S), the record dots there as blue rings (filled when matched), every spot the camera
/// found as a dot where its ray meets the skin (green when matched, red when not: stubble, pores, dots not in the
/// record), and for each pair a line from the found dot along its residual magnified, with the figures in words.
/// </summary>
public static class DotRegistrationPicture
{
    /// <summary>Writes the picture as a PNG to <paramref name="path"/>.</summary>
    /// <param name="result">The registration.</param>
    /// <param name="record">The record it was given (frame S).</param>
    /// <param name="title">The first line.</param>
    /// <param name="path">Where to write.</param>
    /// <param name="residualMagnification">How much longer a residual is drawn than it is (default 10).</param>
    public static void WritePng(DotRegistrationResult result, IReadOnlyList<RecordedDot> record, string title, string path, double residualMagnification = 10)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(path);
        var hits = result.ObservedS.Where(h => h is not null).Select(h => h!.Value).ToList();
        if (hits.Count == 0) throw new ArgumentException("a registration picture needs found dots", nameof(result));
        const int Size = 1100, TitlePx = 70;
        var centre = hits.Aggregate(Vec3.Zero, (a, b) => a + b) * (1.0 / hits.Count);
        var nearest = record.MinBy(d => d.PointMm.DistanceTo(centre));
        var normal = nearest?.Normal ?? new Vec3(0, 0, 1);
        var e1 = Vec3.Cross(new Vec3(0, 1, 0), normal).Normalized();
        if (e1 == Vec3.Zero) e1 = new Vec3(1, 0, 0);
        var e2 = Vec3.Cross(normal, e1);
        var span = Math.Max(hits.Max(h => Math.Abs(Vec3.Dot(h - centre, e1))), hits.Max(h => Math.Abs(Vec3.Dot(h - centre, e2)))) + 2;
        var pxPerMm = (Size / 2.0) / span;
        SKPoint P(Vec3 p) => new((float)((Size / 2) + (Vec3.Dot(p - centre, e1) * pxPerMm)), (float)(TitlePx + (Size / 2) - (Vec3.Dot(p - centre, e2) * pxPerMm)));

        using var surface = SKSurface.Create(new SKImageInfo(Size, Size + TitlePx, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(new SKColor(246, 246, 244));
        using var skin = new SKPaint { Color = new SKColor(236, 214, 196) };
        canvas.DrawRect(0, TitlePx, Size, Size, skin);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var font = new SKFont(SKTypeface.Default, 22);
        using var small = new SKFont(SKTypeface.Default, 16);
        canvas.DrawText(title, 10, 28, font, ink);
        var summary = string.Create(CultureInfo.InvariantCulture,
            $"{(result.Accepted ? "ACCEPTED" : "REFUSED: " + result.RefusalReason)} · {result.Matched} of {result.ExpectedInView} expected matched ({result.MatchedFraction:P1}), {result.DotsFound} found · RMS {result.ResidualRmsMm:0.000} mm, p95 {result.ResidualP95Mm:0.000} mm · residuals ×{residualMagnification:0}");
        canvas.DrawText(summary.Length > 150 ? summary[..150] + "…" : summary, 10, 56, small, ink);

        var matchedRecords = result.Pairs.Select(p => p.RecordIndex).ToHashSet();
        var matchedObservations = result.Pairs.Select(p => p.Observation).ToHashSet();
        using var ring = new SKPaint { Color = new SKColor(30, 70, 200), IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = 1.5f };
        using var ringFill = new SKPaint { Color = new SKColor(30, 70, 200, 150), IsAntialias = true };
        var radiusPx = (float)Math.Max(3, 0.3 * pxPerMm);
        for (var j = 0; j < record.Count; j++)
        {
            var d = record[j];
            if (Vec3.Dot(d.Normal, normal) < 0.3) continue;
            var at = P(d.PointMm);
            if (at.X < -10 || at.X > Size + 10 || at.Y < TitlePx - 10 || at.Y > TitlePx + Size + 10) continue;
            canvas.DrawCircle(at, radiusPx, matchedRecords.Contains(j) ? ringFill : ring);
        }
        using var good = new SKPaint { Color = new SKColor(20, 150, 40), IsAntialias = true };
        using var bad = new SKPaint { Color = new SKColor(210, 40, 30), IsAntialias = true };
        for (var i = 0; i < result.ObservedS.Count; i++)
        {
            if (result.ObservedS[i] is not { } h) continue;
            canvas.DrawCircle(P(h), matchedObservations.Contains(i) ? 2.2f : 1.6f, matchedObservations.Contains(i) ? good : bad);
        }
        using var line = new SKPaint { Color = new SKColor(240, 130, 0), IsAntialias = true, StrokeWidth = 1.5f, Style = SKPaintStyle.Stroke };
        foreach (var pair in result.Pairs)
        {
            canvas.DrawLine(P(pair.ObservedS), P(pair.ObservedS + ((pair.RecordS - pair.ObservedS) * residualMagnification)), line);
        }
        // A 5 mm scale.
        using var bar = new SKPaint { Color = SKColors.Black, StrokeWidth = 3 };
        var y0 = TitlePx + Size - 20f;
        canvas.DrawLine(20, y0, 20 + (float)(5 * pxPerMm), y0, bar);
        canvas.DrawText("5 mm", 20, y0 - 8, small, ink);

        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }
}
