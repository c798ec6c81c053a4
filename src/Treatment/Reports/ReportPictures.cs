using System.Globalization;
using SkiaSharp;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Surface;

namespace SmpRobot.Treatment.Reports;

/// <summary>
/// The reports' pictures, PNG via SkiaSharp in the style of <see cref="Preview.DesignPreview"/>: maps of frame S
/// seen from above (the scalp map, front up, the person's right on the right), histograms and the session's
/// timeline. Each is drawn for a fixed width in pixels (about 200 dpi across the A4 text width) with text sized for
/// print. The callers decide whether there is anything to draw: these never draw an empty plot.
/// </summary>
internal static class ReportPictures
{
    /// <summary>Picture width, px: 174 mm of page at about 200 dpi.</summary>
    public const int Width = 1400;

    /// <summary>A map picture's height, px (legend included).</summary>
    public const int MapPx = 1000;

    /// <summary>A map picture's width, px: narrower than the others, since a head seen from above is about round and the page holds two maps.</summary>
    public const int MapWidth = 1200;

    private static readonly SKColor Paper = new(255, 255, 255);
    private static readonly SKColor Skin = new(240, 224, 210);
    private static readonly SKColor Ink = new(25, 25, 25);
    private static readonly SKColor Grid = new(210, 210, 210);

    /// <summary>One of the session colours (1-based), distinct for up to 8 sessions, then repeating.</summary>
    public static SKColor SessionColour(int session)
    {
        SKColor[] palette = [new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189), new(140, 86, 75), new(227, 119, 194), new(127, 127, 127)];
        return palette[((session - 1) % palette.Length + palette.Length) % palette.Length];
    }

    /// <summary>The colour of a dot's final state.</summary>
    public static SKColor StateColour(ReportDotState state) => state switch
    {
        ReportDotState.Placed => new SKColor(40, 40, 40),
        ReportDotState.Skipped => new SKColor(230, 140, 20),
        ReportDotState.Pending => new SKColor(70, 130, 220),
        _ => new SKColor(220, 30, 30),
    };

    /// <summary>A map picture's canvas: the bounds of what it shows and the mm → px mapping.</summary>
    private sealed class MapCanvas : IDisposable
    {
        private readonly SKSurface _surface;
        private readonly double _minX, _maxY;

        public MapCanvas(ReportDesign design, IEnumerable<MapPoint> content, int height, ReportFonts fonts)
        {
            var pts = content.Concat(design.Outline.SelectMany(c => c.PointsS.Select(design.Map.ToMap))).ToList();
            if (pts.Count == 0) pts.Add(new MapPoint(0, 0));
            const double MarginMm = 6;
            var (minX, maxX) = (pts.Min(p => p.X) - MarginMm, pts.Max(p => p.X) + MarginMm);
            var (minY, maxY) = (pts.Min(p => p.Y) - MarginMm, pts.Max(p => p.Y) + MarginMm);
            PlotHeight = height - LegendPx;
            PxPerMm = Math.Min(MapWidth / (maxX - minX), PlotHeight / (maxY - minY));
            // Centre the content in the plot area.
            _minX = minX - ((MapWidth / PxPerMm) - (maxX - minX)) / 2;
            _maxY = maxY + ((PlotHeight / PxPerMm) - (maxY - minY)) / 2;
            _surface = SKSurface.Create(new SKImageInfo(MapWidth, height, SKColorType.Rgba8888, SKAlphaType.Premul));
            Canvas.Clear(Paper);
            using var skin = new SKPaint { Color = Skin };
            Canvas.DrawRect(0, 0, MapWidth, PlotHeight, skin);
            Regular = new SKFont(fonts.Typeface(), 30);
            Bold = new SKFont(fonts.Typeface(bold: true), 30);
        }

        public const int LegendPx = 120;

        public int PlotHeight { get; }

        public double PxPerMm { get; }

        public SKCanvas Canvas => _surface.Canvas;

        public SKFont Regular { get; }

        public SKFont Bold { get; }

        public SKPoint P(MapPoint m) => new((float)((m.X - _minX) * PxPerMm), (float)((_maxY - m.Y) * PxPerMm));

        public void DrawOutline(ReportDesign design)
        {
            using var paint = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Stroke };
            foreach (var curve in design.Outline)
            {
                if (curve.PointsS.Count < 2) continue;
                (paint.Color, paint.StrokeWidth) = curve.Kind switch
                {
                    OutlineKind.Hairline => (new SKColor(200, 40, 40, 220), 4f),
                    OutlineKind.Zone => (new SKColor(40, 90, 200, 170), 2.5f),
                    OutlineKind.Scar => (new SKColor(230, 130, 20, 220), 3f),
                    _ => (new SKColor(0, 150, 150, 230), 3f),
                };
                using var path = new SKPath();
                path.MoveTo(P(design.Map.ToMap(curve.PointsS[0])));
                foreach (var p in curve.PointsS.Skip(1)) path.LineTo(P(design.Map.ToMap(p)));
                if (curve.Closed) path.Close();
                Canvas.DrawPath(path, paint);
            }
        }

        /// <summary>A scale bar of <paramref name="mm"/> at the plot's lower left, and the orientation.</summary>
        public void DrawScaleBar(double mm, string label)
        {
            using var ink = new SKPaint { Color = Ink, IsAntialias = true, StrokeWidth = 4 };
            var y = PlotHeight - 24f;
            var len = (float)(mm * PxPerMm);
            // The orientation goes with the scale, in the corner a head seen from above mostly leaves free; a pale
            // backing keeps both readable where dots or density reach into it.
            var text = label + " · front ↑, seen from above";
            using var backing = new SKPaint { Color = Skin.WithAlpha(215) };
            Canvas.DrawRect(new SKRect(14, y - 26, 44 + len + Regular.MeasureText(text), y + 16), backing);
            Canvas.DrawLine(24, y, 24 + len, y, ink);
            Canvas.DrawLine(24, y - 8, 24, y + 8, ink);
            Canvas.DrawLine(24 + len, y - 8, 24 + len, y + 8, ink);
            Canvas.DrawText(text, 34 + len, y + 9, Regular, ink);
        }

        /// <summary>Legend entries left to right below the plot: a swatch and its text.</summary>
        public void DrawLegend(IReadOnlyList<(SKColor Colour, string Text)> entries, int row = 0)
        {
            using var ink = new SKPaint { Color = Ink, IsAntialias = true };
            using var swatch = new SKPaint { IsAntialias = true };
            var x = 24f;
            var y = PlotHeight + 40f + (row * 40);
            foreach (var (colour, text) in entries)
            {
                swatch.Color = colour;
                Canvas.DrawCircle(x + 10, y - 9, 10, swatch);
                Canvas.DrawText(text, x + 28, y, Regular, ink);
                x += 28 + Regular.MeasureText(text) + 36;
            }
        }

        public byte[] Png()
        {
            using var image = _surface.Snapshot();
            using var data = image.Encode(SKEncodedImageFormat.Png, 100);
            return data.ToArray();
        }

        public void Dispose()
        {
            Regular.Dispose();
            Bold.Dispose();
            _surface.Dispose();
        }
    }

    /// <summary>The design's outline alone (when no pre-rendered picture is given).</summary>
    public static byte[] DesignOutline(ReportDesign design, ReportFonts fonts)
    {
        using var map = new MapCanvas(design, [], MapPx, fonts);
        map.DrawOutline(design);
        map.DrawScaleBar(10, "10 mm on the map");
        map.DrawLegend(OutlineLegend(design));
        return map.Png();
    }

    /// <summary>The session's plan: every dot at its planned place, coloured by how it ended, over the outline.</summary>
    public static byte[] PlanMap(ReportDesign design, IReadOnlyList<ReportDot> dots, ReportFonts fonts)
    {
        var points = dots.Select(d => design.Map.ToMap(d.PlannedS)).ToList();
        using var map = new MapCanvas(design, points, MapPx, fonts);
        map.DrawOutline(design);
        using var fill = new SKPaint { IsAntialias = true };
        var radius = (float)Math.Clamp(0.45 * map.PxPerMm, 2, 6);
        // Placed first, the states that need attention last (on top).
        foreach (var i in Enumerable.Range(0, dots.Count).OrderBy(i => dots[i].State == ReportDotState.Placed ? 0 : 1))
        {
            fill.Color = StateColour(dots[i].State);
            map.Canvas.DrawCircle(map.P(points[i]), dots[i].State == ReportDotState.Placed ? radius : radius * 1.4f, fill);
        }
        map.DrawScaleBar(10, "10 mm");
        var counts = Enum.GetValues<ReportDotState>().Select(s => (s, n: dots.Count(d => d.State == s))).Where(c => c.n > 0);
        map.DrawLegend([.. counts.Select(c => (StateColour(c.s), string.Create(CultureInfo.InvariantCulture, $"{StateName(c.s)} {c.n:N0}")))]);
        map.DrawLegend(OutlineLegend(design), 1);
        return map.Png();
    }

    /// <summary>
    /// Placed against planned: for every dot the camera checked, an arrow from its planned place along the measured
    /// offset, lengthened <paramref name="exaggeration"/> times, coloured by the offset's true length.
    /// </summary>
    public static byte[] OffsetMap(ReportDesign design, IReadOnlyList<ReportDot> dots, double exaggeration, double colourMaxMm, ReportFonts fonts)
    {
        var measured = dots.Where(d => d.MeasuredOffsetSMm is not null).ToList();
        var from = measured.Select(d => design.Map.ToMap(d.PlannedS)).ToList();
        using var map = new MapCanvas(design, from, MapPx, fonts);
        map.DrawOutline(design);
        using var stroke = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = 2.2f, StrokeCap = SKStrokeCap.Round };
        using var fill = new SKPaint { IsAntialias = true };
        for (var i = 0; i < measured.Count; i++)
        {
            var offset = measured[i].MeasuredOffsetSMm!.Value;
            var a = from[i];
            var seen = design.Map.ToMap(measured[i].PlannedS + offset);
            var to = new MapPoint(a.X + ((seen.X - a.X) * exaggeration), a.Y + ((seen.Y - a.Y) * exaggeration));
            var colour = Ramp(offset.Length / colourMaxMm);
            stroke.Color = colour;
            fill.Color = colour;
            var (pa, pb) = (map.P(a), map.P(to));
            map.Canvas.DrawLine(pa, pb, stroke);
            map.Canvas.DrawCircle(pb, 2.6f, fill);
        }
        map.DrawScaleBar(10, "10 mm (positions)");
        DrawColourBar(map, 0, colourMaxMm, "measured offset, mm (arrows ×" + exaggeration.ToString("0", CultureInfo.InvariantCulture) + " long)");
        return map.Png();
    }

    /// <summary>
    /// Density in dots per cm² over the map: each dot's count of dots within <paramref name="radiusMm"/> measured in
    /// 3-D on the skin, divided by the disc's area; each 1.5 mm map cell shows its nearest dot's value (within
    /// 3 mm; farther cells show bare skin). Colour bar to <paramref name="maxPerCm2"/>.
    /// </summary>
    public static byte[] DensityMap(ReportDesign design, IReadOnlyList<Vec3> pointsS, double radiusMm, double maxPerCm2, string caption, ReportFonts fonts)
    {
        var density = LocalDensityPerCm2(pointsS, radiusMm);
        var points = pointsS.Select(design.Map.ToMap).ToList();
        using var map = new MapCanvas(design, points, MapPx, fonts);
        const double CellMm = 1.5, ReachMm = 3;
        var index = new Dictionary<(int, int), List<int>>();
        for (var i = 0; i < points.Count; i++)
        {
            var key = ((int)Math.Floor(points[i].X / ReachMm), (int)Math.Floor(points[i].Y / ReachMm));
            if (!index.TryGetValue(key, out var list)) index[key] = list = [];
            list.Add(i);
        }
        using var fill = new SKPaint { IsAntialias = false };
        var minX = points.Min(p => p.X) - ReachMm;
        var maxX = points.Max(p => p.X) + ReachMm;
        var minY = points.Min(p => p.Y) - ReachMm;
        var maxY = points.Max(p => p.Y) + ReachMm;
        for (var x = minX; x < maxX; x += CellMm)
        {
            for (var y = minY; y < maxY; y += CellMm)
            {
                var c = new MapPoint(x + (CellMm / 2), y + (CellMm / 2));
                var (kx, ky) = ((int)Math.Floor(c.X / ReachMm), (int)Math.Floor(c.Y / ReachMm));
                var best = -1;
                var bestD = ReachMm;
                for (var dx = -1; dx <= 1; dx++)
                {
                    for (var dy = -1; dy <= 1; dy++)
                    {
                        if (!index.TryGetValue((kx + dx, ky + dy), out var list)) continue;
                        foreach (var i in list)
                        {
                            var d = points[i].DistanceTo(c);
                            if (d < bestD) (best, bestD) = (i, d);
                        }
                    }
                }
                if (best < 0) continue;
                fill.Color = Ramp(density[best] / maxPerCm2);
                var p0 = map.P(new MapPoint(x, y + CellMm));
                var p1 = map.P(new MapPoint(x + CellMm, y));
                map.Canvas.DrawRect(new SKRect(p0.X, p0.Y, p1.X + 0.5f, p1.Y + 0.5f), fill);
            }
        }
        map.DrawOutline(design);
        map.DrawScaleBar(10, "10 mm");
        DrawColourBar(map, 0, maxPerCm2, caption);
        return map.Png();
    }

    /// <summary>Every dot placed, coloured by the session that placed it (later sessions on top).</summary>
    public static byte[] SessionMap(ReportDesign design, IReadOnlyList<PlacedDot> dots, ReportFonts fonts)
    {
        var points = dots.Select(d => design.Map.ToMap(d.PlacedS)).ToList();
        using var map = new MapCanvas(design, points, MapPx, fonts);
        map.DrawOutline(design);
        using var fill = new SKPaint { IsAntialias = true };
        var radius = (float)Math.Clamp(0.4 * map.PxPerMm, 2, 6);
        foreach (var i in Enumerable.Range(0, dots.Count).OrderBy(i => dots[i].SessionNumber))
        {
            fill.Color = SessionColour(dots[i].SessionNumber);
            map.Canvas.DrawCircle(map.P(points[i]), radius, fill);
        }
        map.DrawScaleBar(10, "10 mm");
        map.DrawLegend([.. dots.GroupBy(d => d.SessionNumber).OrderBy(g => g.Key)
            .Select(g => (SessionColour(g.Key), string.Create(CultureInfo.InvariantCulture, $"session {g.Key}: {g.Count():N0}")))]);
        return map.Png();
    }

    /// <summary>
    /// A histogram of <paramref name="values"/> (at least one) with count on the vertical axis, nice bins covering
    /// [<paramref name="from"/>, <paramref name="to"/>] and values outside counted in the end bins (said in the
    /// caption by the caller). A dashed line marks <paramref name="markAt"/> when given (a tolerance).
    /// </summary>
    public static byte[] Histogram(IReadOnlyList<double> values, double from, double to, int bins, string xLabel, double? markAt, string? markLabel, ReportFonts fonts)
    {
        const int Height = 620, Left = 120, Right = 40, Top = 30, Bottom = 110;
        var counts = new int[bins];
        var width = (to - from) / bins;
        foreach (var v in values) counts[Math.Clamp((int)Math.Floor((v - from) / width), 0, bins - 1)]++;
        var yTicks = NiceTicks(0, Math.Max(1, counts.Max()), 5);
        var yMax = yTicks[^1];
        using var surface = SKSurface.Create(new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(Paper);
        using var font = new SKFont(fonts.Typeface(), 30);
        using var ink = new SKPaint { Color = Ink, IsAntialias = true, StrokeWidth = 2 };
        using var grid = new SKPaint { Color = Grid, StrokeWidth = 1 };
        using var bar = new SKPaint { Color = new SKColor(70, 110, 170), IsAntialias = true };
        var plotW = Width - Left - Right;
        var plotH = Height - Top - Bottom;
        float X(double v) => (float)(Left + ((v - from) / (to - from) * plotW));
        float Y(double c) => (float)(Top + plotH - (c / yMax * plotH));
        foreach (var t in yTicks)
        {
            canvas.DrawLine(Left, Y(t), Left + plotW, Y(t), grid);
            canvas.DrawText(t.ToString("0.##", CultureInfo.InvariantCulture), Left - 12, Y(t) + 9, SKTextAlign.Right, font, ink);
        }
        for (var b = 0; b < bins; b++)
        {
            if (counts[b] == 0) continue;
            canvas.DrawRect(new SKRect(X(from + (b * width)) + 1, Y(counts[b]), X(from + ((b + 1) * width)) - 1, Y(0)), bar);
        }
        canvas.DrawLine(Left, Y(0), Left + plotW, Y(0), ink);
        canvas.DrawLine(Left, Top, Left, Y(0), ink);
        foreach (var t in NiceTicks(from, to, 8).Where(t => t >= from - 1e-9 && t <= to + 1e-9))
        {
            canvas.DrawLine(X(t), Y(0), X(t), Y(0) + 10, ink);
            canvas.DrawText(t.ToString("0.###", CultureInfo.InvariantCulture), X(t), Y(0) + 44, SKTextAlign.Center, font, ink);
        }
        canvas.DrawText(xLabel, Left + (plotW / 2f), Height - 20, SKTextAlign.Center, font, ink);
        canvas.Save();
        canvas.RotateDegrees(-90);
        canvas.DrawText("dots", -(Top + (plotH / 2f)), 40, SKTextAlign.Center, font, ink);
        canvas.Restore();
        if (markAt is { } m && m > from && m < to)
        {
            using var mark = new SKPaint { Color = new SKColor(200, 30, 30), IsAntialias = true, StrokeWidth = 3, PathEffect = SKPathEffect.CreateDash([12, 8], 0) };
            canvas.DrawLine(X(m), Top, X(m), Y(0), mark);
            using var red = new SKPaint { Color = new SKColor(200, 30, 30), IsAntialias = true };
            canvas.DrawText(markLabel ?? "", X(m) + 8, Top + 26, font, red);
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>
    /// The session's timeline from <paramref name="start"/> to <paramref name="end"/>: the time spent held (from a
    /// hold, pause or e-stop to the next resume) shaded, each event a marker on its own lane, times in UTC.
    /// </summary>
    public static byte[] Timeline(DateTimeOffset start, DateTimeOffset end, IReadOnlyList<TimelineEvent> events, ReportFonts fonts)
    {
        const int Height = 400, Left = 200, Right = 50, Top = 20;
        TimelineEventKind[] lanes = [TimelineEventKind.EmergencyStop, TimelineEventKind.Hold, TimelineEventKind.Pause, TimelineEventKind.Resume, TimelineEventKind.Reset];
        const int LaneH = 52;
        var axisY = Top + (lanes.Length * LaneH) + 10;
        var span = Math.Max(1, (end - start).TotalSeconds);
        var plotW = Width - Left - Right;
        // 20 px inside the axis at either end, so a marker at the very start or end clears the lane labels.
        float X(DateTimeOffset t) => (float)(Left + 20 + (Math.Clamp((t - start).TotalSeconds / span, 0, 1) * (plotW - 40)));
        using var surface = SKSurface.Create(new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(Paper);
        using var font = new SKFont(fonts.Typeface(), 30);
        using var ink = new SKPaint { Color = Ink, IsAntialias = true, StrokeWidth = 2 };
        using var shade = new SKPaint { Color = new SKColor(255, 200, 120, 90) };
        using var grid = new SKPaint { Color = Grid, StrokeWidth = 1 };

        // Held spans: from a stop to the next resume (or the end).
        DateTimeOffset? heldSince = null;
        foreach (var e in events.OrderBy(e => e.At))
        {
            if (e.Kind is TimelineEventKind.Hold or TimelineEventKind.Pause or TimelineEventKind.EmergencyStop) heldSince ??= e.At;
            else if (e.Kind == TimelineEventKind.Resume && heldSince is { } s)
            {
                canvas.DrawRect(new SKRect(X(s), Top, Math.Max(X(e.At), X(s) + 2), axisY), shade);
                heldSince = null;
            }
        }
        if (heldSince is { } open) canvas.DrawRect(new SKRect(X(open), Top, X(end), axisY), shade);

        for (var l = 0; l < lanes.Length; l++)
        {
            var y = Top + (l * LaneH) + (LaneH / 2f);
            canvas.DrawLine(Left, y, Left + plotW, y, grid);
            canvas.DrawText(KindName(lanes[l]), Left - 14, y + 9, SKTextAlign.Right, font, ink);
        }
        using var marker = new SKPaint { IsAntialias = true };
        foreach (var e in events)
        {
            var y = Top + (Array.IndexOf(lanes, e.Kind) * LaneH) + (LaneH / 2f);
            marker.Color = KindColour(e.Kind);
            var x = X(e.At);
            if (e.Kind == TimelineEventKind.EmergencyStop)
            {
                using var tri = new SKPath();
                tri.MoveTo(x, y - 16);
                tri.LineTo(x + 15, y + 12);
                tri.LineTo(x - 15, y + 12);
                tri.Close();
                canvas.DrawPath(tri, marker);
            }
            else
            {
                canvas.DrawCircle(x, y, 10, marker);
            }
        }
        canvas.DrawLine(Left, axisY, Left + plotW, axisY, ink);
        // Ticks at a round step of minutes (or seconds for a short session).
        var stepS = NiceStepSeconds(span / 6);
        var first = Math.Ceiling(start.ToUnixTimeSeconds() / stepS) * stepS;
        for (var t = first; t <= end.ToUnixTimeSeconds(); t += stepS)
        {
            var at = DateTimeOffset.FromUnixTimeSeconds((long)t);
            canvas.DrawLine(X(at), axisY, X(at), axisY + 10, ink);
            canvas.DrawText(at.UtcDateTime.ToString(stepS < 60 ? "HH:mm:ss" : "HH:mm", CultureInfo.InvariantCulture), X(at), axisY + 44, SKTextAlign.Center, font, ink);
        }
        canvas.DrawText("time (UTC)", Left + (plotW / 2f), Height - 12, SKTextAlign.Center, font, ink);
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Dots per cm² around each point: the points within <paramref name="radiusMm"/> in 3-D (itself included) over the disc's area.</summary>
    public static double[] LocalDensityPerCm2(IReadOnlyList<Vec3> points, double radiusMm)
    {
        var cells = new Dictionary<(int, int, int), List<int>>();
        (int, int, int) Key(Vec3 p) => ((int)Math.Floor(p.X / radiusMm), (int)Math.Floor(p.Y / radiusMm), (int)Math.Floor(p.Z / radiusMm));
        for (var i = 0; i < points.Count; i++)
        {
            var k = Key(points[i]);
            if (!cells.TryGetValue(k, out var list)) cells[k] = list = [];
            list.Add(i);
        }
        var areaCm2 = Math.PI * radiusMm * radiusMm / 100;
        var result = new double[points.Count];
        for (var i = 0; i < points.Count; i++)
        {
            var (kx, ky, kz) = Key(points[i]);
            var n = 0;
            for (var dx = -1; dx <= 1; dx++)
            {
                for (var dy = -1; dy <= 1; dy++)
                {
                    for (var dz = -1; dz <= 1; dz++)
                    {
                        if (!cells.TryGetValue((kx + dx, ky + dy, kz + dz), out var list)) continue;
                        foreach (var j in list) if (points[j].DistanceTo(points[i]) <= radiusMm) n++;
                    }
                }
            }
            result[i] = n / areaCm2;
        }
        return result;
    }

    /// <summary>Round tick values from about <paramref name="min"/> to at least <paramref name="max"/>, about <paramref name="count"/> of them.</summary>
    public static double[] NiceTicks(double min, double max, int count)
    {
        var range = Math.Max(max - min, 1e-9);
        var raw = range / count;
        var mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        var step = new[] { 1.0, 2, 2.5, 5, 10 }.Select(f => f * mag).First(s => s >= raw);
        var start = Math.Floor(min / step) * step;
        var ticks = new List<double>();
        for (var t = start; t < max + step - 1e-9; t += step) ticks.Add((Math.Round(t / step) * step) + 0.0); // + 0.0: no "-0" label
        return [.. ticks];
    }

    public static string StateName(ReportDotState state) => state switch
    {
        ReportDotState.InDoubt => "in doubt",
        _ => state.ToString().ToLowerInvariant(),
    };

    public static string KindName(TimelineEventKind kind) => kind switch
    {
        TimelineEventKind.EmergencyStop => "e-stop",
        _ => kind.ToString().ToLowerInvariant(),
    };

    private static SKColor KindColour(TimelineEventKind kind) => kind switch
    {
        TimelineEventKind.EmergencyStop => new SKColor(210, 20, 20),
        TimelineEventKind.Hold => new SKColor(230, 140, 20),
        TimelineEventKind.Pause => new SKColor(70, 110, 200),
        TimelineEventKind.Resume => new SKColor(40, 150, 60),
        _ => new SKColor(110, 110, 110),
    };

    private static double NiceStepSeconds(double raw)
    {
        double[] steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
        return steps.FirstOrDefault(s => s >= raw, 43200);
    }

    private static List<(SKColor, string)> OutlineLegend(ReportDesign design)
    {
        var entries = new List<(SKColor, string)>();
        if (design.Outline.Any(c => c.Kind == OutlineKind.Hairline)) entries.Add((new SKColor(200, 40, 40), "hairline"));
        if (design.Outline.Any(c => c.Kind == OutlineKind.Zone)) entries.Add((new SKColor(40, 90, 200), "zones"));
        if (design.Outline.Any(c => c.Kind == OutlineKind.Scar)) entries.Add((new SKColor(230, 130, 20), "scars"));
        if (design.Outline.Any(c => c.Kind == OutlineKind.Exclusion)) entries.Add((new SKColor(0, 150, 150), "exclusions"));
        return entries;
    }

    private static void DrawColourBar(MapCanvas map, double min, double max, string caption)
    {
        using var fill = new SKPaint();
        using var ink = new SKPaint { Color = Ink, IsAntialias = true, StrokeWidth = 2 };
        var y = map.PlotHeight + 12f;
        const float X0 = 24, BarW = 420;
        for (var k = 0; k < BarW; k++)
        {
            fill.Color = Ramp(k / (BarW - 1));
            map.Canvas.DrawRect(X0 + k, y, 1.5f, 24, fill);
        }
        foreach (var t in NiceTicks(min, max, 4).Where(t => t <= max + 1e-9))
        {
            var x = X0 + (float)((t - min) / (max - min) * BarW);
            map.Canvas.DrawLine(x, y + 24, x, y + 32, ink);
            map.Canvas.DrawText(t.ToString("0.##", CultureInfo.InvariantCulture), x, y + 60, SKTextAlign.Center, map.Regular, ink);
        }
        map.Canvas.DrawText(caption, X0 + BarW + 30, y + 22, map.Regular, ink);
    }

    /// <summary>A perceptually ordered ramp (dark blue → teal → yellow, like viridis) for 0..1; beyond 1 the top colour.</summary>
    public static SKColor Ramp(double t)
    {
        (double T, byte R, byte G, byte B)[] stops = [(0, 68, 1, 84), (0.25, 59, 82, 139), (0.5, 33, 145, 140), (0.75, 94, 201, 98), (1, 253, 231, 37)];
        t = Math.Clamp(double.IsFinite(t) ? t : 0, 0, 1);
        for (var i = 1; i < stops.Length; i++)
        {
            if (t > stops[i].T) continue;
            var (a, b) = (stops[i - 1], stops[i]);
            var f = (t - a.T) / (b.T - a.T);
            return new SKColor((byte)(a.R + ((b.R - a.R) * f)), (byte)(a.G + ((b.G - a.G) * f)), (byte)(a.B + ((b.B - a.B) * f)));
        }
        return new SKColor(stops[^1].R, stops[^1].G, stops[^1].B);
    }
}
