namespace SmpRobot.Treatment.Sampling;

/// <summary>
/// Smooth, deterministic 1-D noise for the hairline's macro waviness: three sines of incommensurate
/// wavelengths (λ, λ/1.71, λ/2.93) with random phases, weighted 1, ½, ¼ and scaled to about ±1.
/// </summary>
public sealed class SmoothNoise
{
    private readonly double[] _phases;

    public SmoothNoise(int seed)
    {
#pragma warning disable CA5394 // Seeded, reproducible shape noise for a design, not security.
        var rng = new Random(seed);
        _phases = [rng.NextDouble() * 2 * Math.PI, rng.NextDouble() * 2 * Math.PI, rng.NextDouble() * 2 * Math.PI];
#pragma warning restore CA5394
    }

    /// <summary>The noise at <paramref name="positionMm"/> along a line, for waves of <paramref name="wavelengthMm"/>; in about [-1, 1].</summary>
    public double At(double positionMm, double wavelengthMm)
    {
        var x = 2 * Math.PI * positionMm / wavelengthMm;
        return ((Math.Sin(x + _phases[0]) * 1.0) + (Math.Sin((x * 1.71) + _phases[1]) * 0.5) + (Math.Sin((x * 2.93) + _phases[2]) * 0.25)) / 1.2;
    }
}
