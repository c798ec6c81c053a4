using System.Globalization;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Planning;
using SmpRobot.Treatment.Sampling;

namespace SmpRobot.Treatment.Registration;

/// <summary>A dot of an earlier session the camera found today, where it was measured.</summary>
/// <param name="Id">The record dot it was matched to, or a name for an unmatched one.</param>
/// <param name="PointH">Its measured centre on the skin, today's head frame H, mm.</param>
public sealed record FoundDot(string Id, Vec3 PointH);

/// <summary>Whether a planned dot of today's session may be placed beside the dots found.</summary>
/// <param name="Dot">The planned dot (frame S).</param>
/// <param name="Keep">True: it keeps the spacing and may be placed.</param>
/// <param name="NearestFoundId">The nearest found dot, or null when none is within reach of the check.</param>
/// <param name="NearestFoundMm">Distance to it, mm (+∞ when none).</param>
/// <param name="RequiredMm">The spacing it must keep: the factor times its region's minimum spacing, mm.</param>
/// <param name="Reason">In words, naming the nearest found dot and the distance.</param>
public sealed record SpacingDecision(DesignDot Dot, bool Keep, string? NearestFoundId, double NearestFoundMm, double RequiredMm, string Reason);

/// <summary>
/// Today's new dots against the dots earlier sessions really left: each planned dot, placed in H with the T_HS found
/// from the dots, is kept when no found dot is closer than <c>factor</c> × its region's minimum spacing
/// (<see cref="Design.RegionSettings.MinSpacingMm"/>: "no two of its dots closer", the floor of
/// <see cref="BlueNoiseSampler"/>'s hard core, and what the design's cross-session metric is measured against), and
/// left out otherwise. Planned dots that no found dot comes near are kept: this is a check against what was found, not
/// against the record (the design already spaced them from the record).
/// </summary>
public static class FoundDotSpacing
{
    /// <summary>Decides every planned dot of <paramref name="planned"/>, in order.</summary>
    /// <param name="planned">Today's session's dots, frame S.</param>
    /// <param name="headFromScalp">T_HS found from the dots.</param>
    /// <param name="found">The dots found, measured, frame H.</param>
    /// <param name="factor">Share of the minimum spacing a new dot must keep from a found one (default 0.9).</param>
    /// <param name="allowanceMm">Added to the required spacing: room for today's placement error, mm (default 0).</param>
    public static IReadOnlyList<SpacingDecision> Check(IReadOnlyList<DesignDot> planned, RigidTransform headFromScalp, IReadOnlyList<FoundDot> found, double factor = 0.9, double allowanceMm = 0)
    {
        ArgumentNullException.ThrowIfNull(planned);
        ArgumentNullException.ThrowIfNull(found);
        if (!(factor > 0)) throw new ArgumentOutOfRangeException(nameof(factor), factor, "the factor must be positive");
        if (!(allowanceMm >= 0)) throw new ArgumentOutOfRangeException(nameof(allowanceMm), allowanceMm, "the allowance must not be negative");
        var points = found.Select(f => f.PointH).ToArray();
        var largest = planned.Count == 0 ? 1 : planned.Max(d => d.Region.MinSpacingMm);
        var reach = (factor * largest) + allowanceMm;
        var grid = new PointGrid(points, Math.Max(reach, 0.1));
        var near = new List<int>();
        var decisions = new List<SpacingDecision>(planned.Count);
        foreach (var dot in planned)
        {
            var p = headFromScalp.Apply(dot.PointMm);
            var required = (factor * dot.Region.MinSpacingMm) + allowanceMm;
            grid.Within(p, required, near);
            var nearest = -1;
            var distance = double.PositiveInfinity;
            foreach (var j in near)
            {
                var d = points[j].DistanceTo(p);
                if (d < distance)
                {
                    distance = d;
                    nearest = j;
                }
            }
            var keep = distance >= required;
            var id = nearest >= 0 ? found[nearest].Id : null;
            var reason = nearest < 0
                ? string.Create(CultureInfo.InvariantCulture, $"kept: no found dot within {required:0.000} mm")
                : keep
                    ? string.Create(CultureInfo.InvariantCulture, $"kept: nearest found dot {id} at {distance:0.000} mm (at least {required:0.000} mm)")
                    : string.Create(CultureInfo.InvariantCulture, $"left out: found dot {id} at {distance:0.000} mm, closer than {required:0.000} mm ({factor:0.##} × the region's minimum spacing {dot.Region.MinSpacingMm:0.000} mm{(allowanceMm > 0 ? $" + {allowanceMm:0.000} mm allowance" : "")})");
            decisions.Add(new SpacingDecision(dot, keep, id, distance, required, reason));
        }
        return decisions;
    }
}
