"""Pictures of the results, drawn from frames the pipeline already decoded: the contact sheet
(`preview.png`) and the annotated video (`annotated.mp4`)."""
