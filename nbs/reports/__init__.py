"""The papermill report templates (this folder is shipped in the package as `genai_accel.report_templates`)."""
