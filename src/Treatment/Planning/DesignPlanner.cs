using System.Diagnostics;
using System.Globalization;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Sampling;

namespace SmpRobot.Treatment.Planning;

/// <summary>One dot of the treatment, in the scalp frame S, with everything its plan line and its picture need.</summary>
/// <param name="Id">"s1-00042": session and number, unique across the treatment.</param>
/// <param name="PointMm">On the skin, frame S.</param>
/// <param name="Normal">Unit outward skin normal, frame S.</param>
/// <param name="Session">1-based.</param>
/// <param name="Region">Its zone or scar.</param>
/// <param name="Layer">Body, hairline band or scar.</param>
/// <param name="BandPosition">Across the hairline band (0 front, 1 back); NaN outside it.</param>
/// <param name="Needle">Its needle.</param>
/// <param name="DepthMm">Depth along the skin normal, mm.</param>
/// <param name="DwellMs">Dwell, ms.</param>
/// <param name="PigmentId">Pigment.</param>
/// <param name="DotDiameterMm">Diameter of the healed dot (the preview's model), mm.</param>
public sealed record DesignDot(string Id, Vec3 PointMm, Vec3 Normal, int Session, RegionSettings Region, DotLayer Layer, double BandPosition, NeedleSpec Needle,
    double DepthMm, double DwellMs, string PigmentId, double DotDiameterMm);

/// <summary>The dots of every session of a design, and how long sampling took.</summary>
public sealed record DesignDots(ResolvedDesign Design, IReadOnlyList<DesignDot> Dots, SamplingResult Sampling, TimeSpan SamplingTime);

/// <summary>
/// Turns a checked design into the dots of every session: blue-noise sampling on the mesh
/// (<see cref="BlueNoiseSampler"/>), then each dot's settings from its region and layer — the hairline
/// band's own finer needle, depth and dwell (blending into the zone's over the back 60 % of the band); a
/// scar's lighter first pass; a dwell varied per dot (uniform dots look artificial) — and its smooth normal
/// from the mesh.
/// </summary>
public static class DesignPlanner
{
    /// <summary>Samples and settles every dot of <paramref name="design"/>; the same design gives the same dots.</summary>
    public static DesignDots Generate(ResolvedDesign design, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(design);
        time ??= TimeProvider.System;
        var started = time.GetTimestamp();
        var sampling = new BlueNoiseSampler(new DensityField(design)).Sample(design.SessionShares, design.Seed);
        var elapsed = time.GetElapsedTime(started);
        var dots = new List<DesignDot>(sampling.Dots.Count);
        var perSession = new int[design.SessionCount + 1];
        // By session, then around the head from the front: ids read in a sensible order.
        foreach (var s in sampling.Dots.OrderBy(d => d.Session).ThenBy(d => Math.Atan2(d.PointMm.X, d.PointMm.Y)).ThenBy(d => d.PointMm.Z))
        {
            var region = design.Regions[s.Region];
            // Hairline dots are finer; towards the back of the band more and more of them take the zone's
            // needle, so the dot size grows across the band instead of stepping at its edge.
            var hairline = s.Layer == DotLayer.Hairline && design.Hairline is { } h && s.Draw >= DensityField.Ramp((s.BandPosition - 0.4) / 0.6, 0) ? h : null;
            var needle = hairline?.Needle ?? region.Needle;
            var depth = hairline?.Source.DepthMm ?? region.DepthMm;
            var nominalDwell = hairline?.Source.DwellMs ?? region.DwellMs;
            var dwell = Math.Round(nominalDwell * s.DwellScale);
            var pigment = s.Session == 1 && region.FirstPassPigment is { } light ? light : region.PigmentPerSession[s.Session - 1];
            var number = ++perSession[s.Session];
            dots.Add(new DesignDot(
                string.Create(CultureInfo.InvariantCulture, $"s{s.Session}-{number:D5}"),
                s.PointMm,
                design.Mesh.NormalAt(s.Face, s.U, s.V),
                s.Session,
                region,
                s.Layer,
                s.BandPosition,
                needle,
                depth,
                dwell,
                pigment,
                needle.DotDiameterMm(dwell, nominalDwell)));
        }
        return new DesignDots(design, dots, sampling, elapsed);
    }
}
