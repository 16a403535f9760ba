// The bundle Panel loads for nbflow.studio.canvas.PipelineCanvas: Panel looks the
// component up by its Python class name in the default export.
import * as PipelineCanvas from "./panel.js";

export default { PipelineCanvas };
