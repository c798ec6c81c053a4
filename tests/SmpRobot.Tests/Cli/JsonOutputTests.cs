using System.Text.Json;
using SmpRobot.Contracts.V1;
using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

public class JsonOutputTests
{
    private static JsonElement Plain(Google.Protobuf.IMessage message)
    {
        using var text = new StringWriter();
        JsonOutput.Write(text, JsonOutput.Message(message));
        return JsonDocument.Parse(text.ToString()).RootElement.Clone();
    }

    [Fact]
    public void Messages_are_plain_json_for_peoples_tools()
    {
        var calibration = Plain(new SmpRobot.Contracts.V1.Calibration { Id = "c-1", Kind = CalibrationKind.Gantry, Notes = "moved +0.5 mm", CreatedAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 12, 2, 10, 0, 0, TimeSpan.Zero)) });
        Assert.Equal("gantry", calibration.GetProperty("kind").GetString());
        Assert.Equal("moved +0.5 mm", calibration.GetProperty("notes").GetString());
        Assert.Equal("2026-12-02T10:00:00.0000000+00:00", calibration.GetProperty("createdAt").GetString());
        Assert.Equal(0, calibration.GetProperty("rms").GetDouble());

        var tracking = Plain(new CameraPreview { FramesProcessed = 5_000_000_000L });
        Assert.Equal(JsonValueKind.Number, tracking.GetProperty("framesProcessed").ValueKind);
        Assert.Equal(5_000_000_000L, tracking.GetProperty("framesProcessed").GetInt64());
        // Not applicable (an optional value never set) is null, not 0.
        Assert.Equal(JsonValueKind.Null, tracking.GetProperty("reprojectionErrorPx").ValueKind);
    }

    [Fact]
    public void Ordinary_characters_are_not_escaped()
    {
        using var text = new StringWriter();
        JsonOutput.Write(text, new System.Text.Json.Nodes.JsonObject { ["reason"] = "a <b> & c + d 'e' é" });
        Assert.Contains("a <b> & c + d 'e' é", text.ToString());
    }
}
