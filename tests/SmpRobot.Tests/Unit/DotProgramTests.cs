using SmpRobot.Controller.Motion;
using SmpRobot.Geometry;

namespace SmpRobot.Tests.Unit;

public class DotProgramTests
{
    private readonly DotProgram _program = new(TestProfiles.Desk());

    [Fact]
    public void Plunge_and_retract_are_relative_z_only_lines()
    {
        var hover = new Vec3(103.1, 107.4, 23.7);
        var depth = new Vec3(103.1, 107.4, 21.3);
        var lines = _program.Place(hover, depth, 200).Select(l => l.Line).ToArray();
        Assert.Equal(["G91 G1 Z-2.4 F1200", "G4 P0.2", "G91 G1 Z2.4 F1200", "G4 P0"], lines);
    }

    [Fact]
    public void Travel_carries_no_z_on_horizontal_lines_and_splits_long_descents()
    {
        var lines = _program.Travel(new Vec3(0, 0, 40), new Vec3(103.1, 107.4, 23.7)).Select(l => l.Line).ToArray();
        Assert.Equal("G90 G1 X103.1 Y107.4 F6000", lines[0]);
        Assert.Equal(["G91 G1 Z-9.0 F1200", "G91 G1 Z-7.3 F1200"], lines[1..]);
        var climb = _program.Travel(new Vec3(10, 10, 20), new Vec3(11, 10, 20.5)).Select(l => l.Line).ToArray();
        Assert.Equal(["G91 G1 Z0.5 F1200", "G90 G1 X11.0 Y10.0 F6000"], climb);
    }

    [Theory]
    [InlineData("G91 G1 Z-3.525 F1200")]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1062", Justification = "xunit passes the InlineData strings, never null")]
    public void Dropping_any_one_byte_of_a_plunge_never_makes_it_deeper_than_a_last_decimal(string line)
    {
        // The claim behind relative single-digit Z moves: every one-byte loss is refused by grbl,
        // moves up or shallower, or deepens by less than 0.1 mm (a lost middle decimal), or is a
        // move so long (a lost '.') that the soft limits refuse it.
        for (var i = 0; i < line.Length; i++)
        {
            var corrupted = line.Remove(i, 1);
            var z = ZWord(corrupted);
            if (z is null) continue; // no Z word: refused or not vertical
            Assert.True(z.Value > -3.525 - 0.1 || z.Value < -40, $"'{corrupted}' would plunge to {z} mm");
        }
    }

    private static double? ZWord(string line)
    {
        var at = line.IndexOf('Z', StringComparison.Ordinal);
        if (at < 0) return null;
        var end = line.IndexOf(' ', at);
        var text = end < 0 ? line[(at + 1)..] : line[(at + 1)..end];
        return double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : null;
    }
}
